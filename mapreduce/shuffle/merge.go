package shuffle

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Values iterates the values of one key; the slice Next returns is valid
// until the next call.
type Values interface{ Next() ([]byte, bool) }

// DefaultMergeFactor is how many sorted runs are merged at once when
// MergeFactor is zero (Hadoop's io.sort.factor is 10; open files and read
// buffers are cheap enough here to take more at once and save passes).
const DefaultMergeFactor = 64

// DefaultReadBufferBytes is the read buffer of each run when
// MergeOptions.ReadBufferBytes is zero.
const DefaultReadBufferBytes = 64 << 10

// merger is a k-way heap merge of segment readers grouping equal keys.
// It is the Values of the current group.
type merger struct {
	h       []*mergeRun
	key     []byte // current group's key (a copy: runs move on under it)
	inGroup bool
	advance bool // h[0] has handed out its value; move it on at the next Next
	records int64
	err     error
}

type mergeRun struct {
	seg segmentReader
	idx int // tie-break: equal keys come out in run order
}

func runLess(a, b *mergeRun) bool {
	if c := bytes.Compare(a.seg.key, b.seg.key); c != 0 {
		return c < 0
	}
	return a.idx < b.idx
}

// init primes every run and builds the heap. The runs must be reset.
func (m *merger) init(runs []*mergeRun) error {
	*m = merger{h: m.h[:0], key: m.key[:0]}
	for i, r := range runs {
		r.idx = i
		if r.seg.next() {
			m.h = append(m.h, r)
		} else if r.seg.err != nil {
			return r.seg.err
		}
	}
	for i := len(m.h)/2 - 1; i >= 0; i-- {
		m.down(i)
	}
	return nil
}

func (m *merger) down(i int) {
	h := m.h
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && runLess(h[r], h[l]) {
			c = r
		}
		if !runLess(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// step moves the smallest run to its next pair.
func (m *merger) step() {
	top := m.h[0]
	m.records++
	if top.seg.next() {
		m.down(0)
		return
	}
	if top.seg.err != nil {
		m.err = top.seg.err
		m.h = m.h[:0]
		return
	}
	last := len(m.h) - 1
	m.h[0] = m.h[last]
	m.h[last] = nil
	m.h = m.h[:last]
	m.down(0)
}

// nextKey finishes the current group (skipping the values its consumer did
// not take) and starts the next; false at the end or on error (m.err).
func (m *merger) nextKey() ([]byte, bool) {
	for m.inGroup {
		m.Next()
	}
	if m.err != nil || len(m.h) == 0 {
		return nil, false
	}
	m.key = append(m.key[:0], m.h[0].seg.key...)
	m.inGroup, m.advance = true, false
	return m.key, true
}

// Next returns the current group's next value.
func (m *merger) Next() ([]byte, bool) {
	if !m.inGroup {
		return nil, false
	}
	if m.advance {
		m.step()
		m.advance = false
	}
	if len(m.h) == 0 || !bytes.Equal(m.h[0].seg.key, m.key) {
		m.inGroup = false
		return nil, false
	}
	m.advance = true
	return m.h[0].seg.val, true
}

// copyTo writes every remaining pair to w.
func (m *merger) copyTo(ctx context.Context, w *segmentWriter) error {
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		key, ok := m.nextKey()
		if !ok {
			return m.err
		}
		for v, ok := m.Next(); ok; v, ok = m.Next() {
			if err := w.add(key, v); err != nil {
				return err
			}
		}
	}
}

// passWidth is how many of n runs the next pass merges so that every later
// pass, the last included, merges exactly factor (Hadoop Merger's
// getPassFactor): fewer files are rewritten than with full first passes.
func passWidth(n, factor int) int {
	if n <= factor {
		return n
	}
	if mod := (n - 1) % (factor - 1); mod != 0 {
		return mod + 1
	}
	return factor
}

// MergeOptions configures Merge. Zero values mean the defaults.
type MergeOptions struct {
	// TmpDir holds intermediate runs when there are more runs than
	// MergeFactor; "" means the directory of the first run (the reducer's
	// fetch directory, on the same local disk).
	TmpDir string
	// MergeFactor is how many runs are open at once (>= 2; 0 means
	// DefaultMergeFactor).
	MergeFactor int
	// ReadBufferBytes is each open run's read buffer (0 means
	// DefaultReadBufferBytes). Memory is about MergeFactor x
	// (ReadBufferBytes + 64 KiB block).
	ReadBufferBytes int
}

func (o *MergeOptions) fill(runs []string) error {
	if o.MergeFactor == 0 {
		o.MergeFactor = DefaultMergeFactor
	}
	if o.MergeFactor < 2 {
		return fmt.Errorf("shuffle: MergeFactor %d < 2", o.MergeFactor)
	}
	if o.ReadBufferBytes == 0 {
		o.ReadBufferBytes = DefaultReadBufferBytes
	}
	if o.ReadBufferBytes < 0 {
		return fmt.Errorf("shuffle: negative ReadBufferBytes %d", o.ReadBufferBytes)
	}
	if o.TmpDir == "" && len(runs) > 0 {
		o.TmpDir = filepath.Dir(runs[0])
	}
	return nil
}

// runFile is one sorted run on the reduce side.
type runFile struct {
	path string
	size int64
	temp bool // ours: removed once merged
}

// Merge merges the sorted runs (segment files as Fetch wrote them) and calls
// fn once per distinct key in increasing bytes.Compare order with all its
// values; key and values are valid only during the call, values not taken
// are skipped. It verifies every block as it reads. With more runs than
// MergeFactor it first merges the smallest ones in passes through TmpDir,
// removing its own intermediate files; the runs themselves are left alone.
// It returns the number of records read, which is every record of the runs
// when err is nil. An error from fn is returned as is; a damaged run gives
// an error wrapping ErrCorrupt naming the file.
func Merge(ctx context.Context, runs []string, opts MergeOptions, fn func(key []byte, values Values) error) (records int64, err error) {
	if err := opts.fill(runs); err != nil {
		return 0, err
	}
	files := make([]runFile, len(runs))
	for i, p := range runs {
		st, err := os.Stat(p)
		if err != nil {
			return 0, fmt.Errorf("shuffle: merge run: %w", err)
		}
		files[i] = runFile{path: p, size: st.Size()}
	}
	var tmpDir string
	defer func() {
		if tmpDir != "" {
			if rerr := os.RemoveAll(tmpDir); rerr != nil && err == nil {
				err = fmt.Errorf("shuffle: remove merge temp dir: %w", rerr)
			}
		}
	}()
	mg := &runMerger{bufBytes: opts.ReadBufferBytes}
	defer mg.close()
	for pass := 0; len(files) > opts.MergeFactor; pass++ {
		if tmpDir == "" {
			if tmpDir, err = os.MkdirTemp(opts.TmpDir, "merge-"); err != nil {
				return 0, fmt.Errorf("shuffle: merge: %w", err)
			}
		}
		slices.SortStableFunc(files, func(a, b runFile) int { return cmp.Compare(a.size, b.size) })
		k := passWidth(len(files), opts.MergeFactor)
		out := filepath.Join(tmpDir, fmt.Sprintf("pass%d-%d.seg", pass, len(files)))
		size, err := mg.mergeToFile(ctx, files[:k], out)
		if err != nil {
			return 0, err
		}
		for _, f := range files[:k] {
			if f.temp {
				os.Remove(f.path)
			}
		}
		files = append(files[k:], runFile{path: out, size: size, temp: true})
	}
	m, err := mg.open(files)
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return m.records, err
			}
		}
		key, ok := m.nextKey()
		if !ok {
			break
		}
		if err := fn(key, m); err != nil {
			return m.records, err
		}
	}
	for m.inGroup { // fn's values not taken
		m.Next()
	}
	return m.records, m.err
}

// runMerger opens runs on the reduce side, reusing its readers and buffers
// across passes.
type runMerger struct {
	bufBytes int
	runs     []*mergeRun
	bufs     []*bufio.Reader
	files    []*os.File
	m        merger
	w        segmentWriter
}

func (g *runMerger) close() {
	for _, f := range g.files {
		f.Close()
	}
	g.files = g.files[:0]
}

func (g *runMerger) open(files []runFile) (*merger, error) {
	g.close()
	for len(g.runs) < len(files) {
		g.runs = append(g.runs, new(mergeRun))
		g.bufs = append(g.bufs, bufio.NewReaderSize(nil, g.bufBytes))
	}
	for i, rf := range files {
		f, err := os.Open(rf.path)
		if err != nil {
			return nil, fmt.Errorf("shuffle: merge: %w", err)
		}
		g.files = append(g.files, f)
		g.bufs[i].Reset(f)
		g.runs[i].seg.reset(g.bufs[i], rf.path)
	}
	if err := g.m.init(g.runs[:len(files)]); err != nil {
		return nil, err
	}
	return &g.m, nil
}

// mergeToFile merges files into one segment file at out and returns its size.
func (g *runMerger) mergeToFile(ctx context.Context, files []runFile, out string) (int64, error) {
	m, err := g.open(files)
	if err != nil {
		return 0, err
	}
	f, err := os.Create(out)
	if err != nil {
		return 0, fmt.Errorf("shuffle: merge: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	err = g.w.begin(bw)
	if err == nil {
		err = m.copyTo(ctx, &g.w)
	}
	var ext Extent
	if err == nil {
		ext, err = g.w.finish()
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	g.close()
	if err != nil {
		os.Remove(out)
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("shuffle: merge into %s: %w", out, err)
		}
		return 0, err
	}
	return ext.Length, nil
}
