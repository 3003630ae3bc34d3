package shuffle

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// CombineFunc is a combiner: called once per key, keys in increasing order,
// over the values of that key in one spill (or one merge of spills). What it
// emits replaces those values. It must emit keys in nondecreasing order that
// fall in the same partition as the key it was called with (normally just
// that key); emit checks this and fails with ErrCombineOrder.
type CombineFunc func(key []byte, values Values, emit func(key, value []byte) error) error

// DefaultSortBufferBytes is WriterOptions.SortBufferBytes when zero
// (Hadoop's io.sort.mb is 100 MiB; a 64 MiB split rarely needs more).
const DefaultSortBufferBytes = 64 << 20

// maxSortBufferBytes keeps arena offsets in a uint32 (with one oversized
// pair on top).
const maxSortBufferBytes = 1 << 31

// WriterOptions configures a Writer. Zero values mean the defaults.
type WriterOptions struct {
	// Dir is this map attempt's directory; created if missing. Spills and
	// the output live here. Required.
	Dir string
	// Reduces is R, the number of partitions (>= 1). Required.
	Reduces int
	// Partition maps a key to its partition in [0, Reduces). nil is only
	// allowed with Reduces == 1.
	Partition func(key []byte) (int, error)
	// Combine, when set, runs over each spill and over the final merge of
	// three or more spills (Hadoop's min.num.spills.for.combine).
	Combine CombineFunc
	// SortBufferBytes bounds the buffered pairs (their encoded bytes plus
	// 16 bytes each) before a spill; 0 means DefaultSortBufferBytes. A
	// single pair larger than the buffer is still taken, alone.
	SortBufferBytes int
	// MergeFactor is how many spill files Close merges at once (>= 2; 0
	// means DefaultMergeFactor); more are merged in passes first.
	MergeFactor int
}

// Stats are a map attempt's output figures, Hadoop's counter names.
type Stats struct {
	// OutputRecords and OutputBytes (key plus value bytes) as emitted by
	// the map, before any combine.
	OutputRecords, OutputBytes int64
	// Records given to and emitted by the combiner, over all its runs.
	CombineInputRecords, CombineOutputRecords int64
	// SpilledRecords counts records written to local files: spills, merge
	// passes and the final output (a record merged from spills counts
	// twice, as in Hadoop).
	SpilledRecords int64
	// Spills is how many times the buffer was sorted and written: 1 when
	// the output fit in memory (one map-side merge input per spill).
	Spills int
	// PartitionBytes is the size of each partition's segment in the output
	// file, framing included: what a reducer fetches.
	PartitionBytes []int64
}

// recordMeta is a buffered pair: what the sort moves instead of the pair.
type recordMeta struct {
	prefix uint64 // first 8 key bytes big-endian, zero-padded: most compares end here
	off    uint32 // the pair's entry in the arena
	part   uint32
}

const metaBytes = 16

type spillFile struct {
	path string
	exts []Extent
}

// Writer partitions, sorts, combines and spills one map attempt's output
// (see doc.go). It is not safe for concurrent use.
type Writer struct {
	opts   WriterOptions
	arena  []byte       // encoded entries, in emit order
	meta   []recordMeta // one per buffered pair
	spills []spillFile
	nspill int
	stats  Stats
	err    error // sticky: a failed spill fails the attempt
	closed bool

	seg  segmentWriter
	bw   *bufio.Writer
	vals bufferValues
	cmb  combineState
	emit func(key, value []byte) error // w.combineEmit, bound once
}

// combineState is what the combiner's emit checks against.
type combineState struct {
	part     int
	group    []byte // key the combiner was called with
	last     []byte // last key emitted in this segment (copy)
	haveLast bool
	err      error // first emit error, even if the combiner swallows it
}

// NewWriter creates opts.Dir and returns a Writer for it. Output left in
// Dir by an earlier use is removed first, so it is never served.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if opts.Dir == "" {
		return nil, errors.New("shuffle: WriterOptions.Dir is empty")
	}
	if opts.Reduces < 1 || opts.Reduces > MaxReduces {
		return nil, fmt.Errorf("shuffle: Reduces %d not in [1, %d]", opts.Reduces, MaxReduces)
	}
	if opts.Partition == nil && opts.Reduces != 1 {
		return nil, fmt.Errorf("shuffle: no Partition function for %d reduces", opts.Reduces)
	}
	if opts.SortBufferBytes == 0 {
		opts.SortBufferBytes = DefaultSortBufferBytes
	}
	if opts.SortBufferBytes < 0 || opts.SortBufferBytes > maxSortBufferBytes {
		return nil, fmt.Errorf("shuffle: SortBufferBytes %d not in [1, %d]", opts.SortBufferBytes, maxSortBufferBytes)
	}
	if opts.MergeFactor == 0 {
		opts.MergeFactor = DefaultMergeFactor
	}
	if opts.MergeFactor < 2 {
		return nil, fmt.Errorf("shuffle: MergeFactor %d < 2", opts.MergeFactor)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("shuffle: %w", err)
	}
	for _, name := range []string{IndexName, OutputName} {
		if err := os.Remove(filepath.Join(opts.Dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("shuffle: remove stale output: %w", err)
		}
	}
	w := &Writer{opts: opts, bw: bufio.NewWriterSize(nil, 256<<10)}
	w.vals.w = w
	w.emit = w.combineEmit
	return w, nil
}

func (w *Writer) partitionOf(key []byte) (int, error) {
	if w.opts.Partition == nil {
		return 0, nil
	}
	p, err := w.opts.Partition(key)
	if err != nil {
		return 0, fmt.Errorf("shuffle: partition: %w", err)
	}
	if p < 0 || p >= w.opts.Reduces {
		return 0, fmt.Errorf("shuffle: partition %d for %d reduces (key %q): %w", p, w.opts.Reduces, abbrev(key), ErrPartition)
	}
	return p, nil
}

func abbrev(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// Emit adds one pair; key and value are copied. A failed spill fails this
// and every later call.
func (w *Writer) Emit(key, value []byte) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	if len(key)+len(value) > MaxRecordBytes {
		return fmt.Errorf("shuffle: emit of %d+%d bytes: %w", len(key), len(value), ErrRecordTooLarge)
	}
	p, err := w.partitionOf(key)
	if err != nil {
		return err
	}
	n := entryLen(key, value)
	if len(w.meta) > 0 && len(w.arena)+n+(len(w.meta)+1)*metaBytes > w.opts.SortBufferBytes {
		if err := w.spill(); err != nil {
			w.err = err
			return err
		}
	}
	w.reserve(n)
	off := len(w.arena)
	w.arena = appendEntry(w.arena, key, value)
	w.meta = append(w.meta, recordMeta{prefix: keyPrefix(key), off: uint32(off), part: uint32(p)})
	w.stats.OutputRecords++
	w.stats.OutputBytes += int64(len(key) + len(value))
	return nil
}

// reserve grows the buffers for one more pair of n encoded bytes, doubling
// but never past the sort buffer bound (append's growth would overshoot it).
func (w *Writer) reserve(n int) {
	if need := len(w.arena) + n; need > cap(w.arena) {
		c := min(max(2*cap(w.arena), 64<<10), max(w.opts.SortBufferBytes, need))
		nb := make([]byte, len(w.arena), max(c, need))
		copy(nb, w.arena)
		w.arena = nb
	}
	if len(w.meta) == cap(w.meta) {
		c := min(max(2*cap(w.meta), 1024), w.opts.SortBufferBytes/metaBytes+1)
		nm := make([]recordMeta, len(w.meta), max(c, len(w.meta)+1))
		copy(nm, w.meta)
		w.meta = nm
	}
}

func keyPrefix(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

// entryAt decodes the arena entry at off. The arena is ours, so no checks.
func (w *Writer) entryAt(off uint32) (key, value, entry []byte) {
	b := w.arena[off:]
	klen, n := binary.Uvarint(b)
	vlen, m := binary.Uvarint(b[n:])
	h := n + m
	k, v := int(klen), int(vlen)
	return b[h : h+k : h+k], b[h+k : h+k+v : h+k+v], b[: h+k+v : h+k+v]
}

func (w *Writer) keyAt(off uint32) []byte {
	b := w.arena[off:]
	klen, n := binary.Uvarint(b)
	_, m := binary.Uvarint(b[n:])
	return b[n+m : n+m+int(klen)]
}

func (w *Writer) compareMeta(a, b recordMeta) int {
	if a.part != b.part {
		return cmp.Compare(a.part, b.part)
	}
	if a.prefix != b.prefix {
		return cmp.Compare(a.prefix, b.prefix)
	}
	return bytes.Compare(w.keyAt(a.off), w.keyAt(b.off))
}

// spill writes the buffer to the next spill file and empties it.
func (w *Writer) spill() error {
	path := filepath.Join(w.opts.Dir, fmt.Sprintf("spill%d.out", w.nspill))
	w.nspill++
	sf, err := w.writeBuffer(path)
	if err != nil {
		return err
	}
	w.spills = append(w.spills, sf)
	return nil
}

// writeBuffer sorts the buffer by (partition, key) and writes it to path as
// R segments, combining when there is a combiner; it empties the buffer.
func (w *Writer) writeBuffer(path string) (spillFile, error) {
	slices.SortFunc(w.meta, w.compareMeta)
	w.stats.Spills++
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return spillFile{}, fmt.Errorf("shuffle: spill: %w", err)
	}
	w.bw.Reset(f)
	exts := make([]Extent, w.opts.Reduces)
	var off int64
	meta := w.meta
	for p := range exts {
		j := 0
		for j < len(meta) && meta[j].part == uint32(p) {
			j++
		}
		var ext Extent
		ext, err = w.writeSegment(p, meta[:j])
		if err != nil {
			break
		}
		ext.Offset = off
		off += ext.Length
		exts[p] = ext
		w.stats.SpilledRecords += ext.Records
		meta = meta[j:]
	}
	if err == nil {
		err = w.bw.Flush()
	}
	w.bw.Reset(nil)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	w.arena, w.meta = w.arena[:0], w.meta[:0]
	if err != nil {
		os.Remove(path)
		return spillFile{}, wrapSpill(path, err)
	}
	return spillFile{path: path, exts: exts}, nil
}

func wrapSpill(path string, err error) error {
	return fmt.Errorf("shuffle: write %s: %w", path, err)
}

// writeSegment writes partition p's sorted pairs as one segment.
func (w *Writer) writeSegment(p int, meta []recordMeta) (Extent, error) {
	if err := w.seg.begin(w.bw); err != nil {
		return Extent{}, err
	}
	if w.opts.Combine == nil {
		for _, m := range meta {
			_, _, e := w.entryAt(m.off)
			if err := w.seg.addEntry(e); err != nil {
				return Extent{}, err
			}
		}
		return w.seg.finish()
	}
	w.cmb = combineState{part: p, last: w.cmb.last[:0]}
	for len(meta) > 0 {
		key := w.keyAt(meta[0].off)
		n := 1
		for n < len(meta) && meta[n].prefix == meta[0].prefix && bytes.Equal(w.keyAt(meta[n].off), key) {
			n++
		}
		w.vals.meta, w.vals.i = meta[:n], 0
		w.stats.CombineInputRecords += int64(n)
		if err := w.combineGroup(key, &w.vals); err != nil {
			return Extent{}, err
		}
		meta = meta[n:]
	}
	return w.seg.finish()
}

func (w *Writer) combineGroup(key []byte, vals Values) error {
	w.cmb.group = key
	err := w.opts.Combine(key, vals, w.emit)
	if w.cmb.err != nil {
		return w.cmb.err
	}
	if err != nil {
		return fmt.Errorf("shuffle: combine: %w", err)
	}
	return nil
}

// combineEmit is the emit the combiner gets: it keeps the segment sorted
// and partitioned.
func (w *Writer) combineEmit(key, value []byte) error {
	c := &w.cmb
	if c.err != nil {
		return c.err
	}
	if len(key)+len(value) > MaxRecordBytes {
		c.err = fmt.Errorf("shuffle: combiner emitted %d+%d bytes: %w", len(key), len(value), ErrRecordTooLarge)
		return c.err
	}
	if c.haveLast && bytes.Compare(key, c.last) < 0 {
		c.err = fmt.Errorf("shuffle: combiner emitted key %q after %q: %w", abbrev(key), abbrev(c.last), ErrCombineOrder)
		return c.err
	}
	if !bytes.Equal(key, c.group) {
		p, err := w.partitionOf(key)
		if err != nil {
			c.err = err
			return err
		}
		if p != c.part {
			c.err = fmt.Errorf("shuffle: combiner emitted key %q of partition %d in partition %d: %w", abbrev(key), p, c.part, ErrCombineOrder)
			return c.err
		}
	}
	if err := w.seg.add(key, value); err != nil {
		c.err = err
		return err
	}
	c.last = append(c.last[:0], key...)
	c.haveLast = true
	w.stats.CombineOutputRecords++
	return nil
}

// bufferValues iterates one key's values in the sorted buffer.
type bufferValues struct {
	w    *Writer
	meta []recordMeta
	i    int
}

func (v *bufferValues) Next() ([]byte, bool) {
	if v.i >= len(v.meta) {
		return nil, false
	}
	_, val, _ := v.w.entryAt(v.meta[v.i].off)
	v.i++
	return val, true
}

// Close spills what is buffered, merges the spills into the output file,
// publishes its index and removes the spills. On error it removes Dir, as
// Abort does: a half-written map output is of no use.
func (w *Writer) Close() (Stats, error) {
	if w.closed {
		return Stats{}, ErrClosed
	}
	w.closed = true
	err := w.err
	if err == nil {
		err = w.finish()
	}
	w.arena, w.meta, w.spills = nil, nil, nil
	if err != nil {
		os.RemoveAll(w.opts.Dir)
		return Stats{}, err
	}
	return w.stats, nil
}

func (w *Writer) finish() error {
	out := filepath.Join(w.opts.Dir, OutputName)
	var final spillFile
	switch {
	case len(w.spills) == 0:
		// Everything fit in memory: the buffer is the output.
		sf, err := w.writeBuffer(out)
		if err != nil {
			return err
		}
		final = sf
	default:
		if len(w.meta) > 0 {
			if err := w.spill(); err != nil {
				return err
			}
		}
		combine := w.opts.Combine != nil && len(w.spills) >= 3
		for len(w.spills) > w.opts.MergeFactor {
			if err := w.mergePass(); err != nil {
				return err
			}
		}
		if len(w.spills) == 1 {
			if err := os.Rename(w.spills[0].path, out); err != nil {
				return fmt.Errorf("shuffle: %w", err)
			}
			final = spillFile{path: out, exts: w.spills[0].exts}
			break
		}
		sf, err := w.mergeSpills(w.spills, out, combine)
		if err != nil {
			return err
		}
		for _, s := range w.spills {
			os.Remove(s.path)
		}
		final = sf
	}
	if err := writeIndex(w.opts.Dir, final.exts); err != nil {
		return fmt.Errorf("shuffle: %w", err)
	}
	w.stats.PartitionBytes = make([]int64, len(final.exts))
	for i, e := range final.exts {
		w.stats.PartitionBytes[i] = e.Length
	}
	return nil
}

func spillBytes(s spillFile) int64 {
	last := s.exts[len(s.exts)-1]
	return last.Offset + last.Length
}

// mergePass merges the smallest spills into one (see passWidth).
func (w *Writer) mergePass() error {
	slices.SortStableFunc(w.spills, func(a, b spillFile) int { return cmp.Compare(spillBytes(a), spillBytes(b)) })
	k := passWidth(len(w.spills), w.opts.MergeFactor)
	path := filepath.Join(w.opts.Dir, fmt.Sprintf("spill%d.out", w.nspill))
	w.nspill++
	sf, err := w.mergeSpills(w.spills[:k], path, false)
	if err != nil {
		return err
	}
	for _, s := range w.spills[:k] {
		os.Remove(s.path)
	}
	w.spills = append(w.spills[k:], sf)
	return nil
}

// mergeSpills merges spills partition by partition into one file at path.
func (w *Writer) mergeSpills(spills []spillFile, path string, combine bool) (sf spillFile, err error) {
	files := make([]*os.File, 0, len(spills))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	runs := make([]*mergeRun, len(spills))
	bufs := make([]*bufio.Reader, len(spills))
	for i, s := range spills {
		f, err := os.Open(s.path)
		if err != nil {
			return spillFile{}, fmt.Errorf("shuffle: merge spills: %w", err)
		}
		files = append(files, f)
		runs[i] = new(mergeRun)
		bufs[i] = bufio.NewReaderSize(nil, DefaultReadBufferBytes)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return spillFile{}, fmt.Errorf("shuffle: merge spills: %w", err)
	}
	w.bw.Reset(out)
	exts := make([]Extent, w.opts.Reduces)
	var off int64
	var m merger
	for p := range exts {
		var ext Extent
		ext, err = w.mergePartition(p, spills, files, runs, bufs, &m, combine)
		if err != nil {
			break
		}
		ext.Offset = off
		off += ext.Length
		exts[p] = ext
		w.stats.SpilledRecords += ext.Records
	}
	if err == nil {
		err = w.bw.Flush()
	}
	w.bw.Reset(nil)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return spillFile{}, wrapSpill(path, err)
	}
	return spillFile{path: path, exts: exts}, nil
}

func (w *Writer) mergePartition(p int, spills []spillFile, files []*os.File, runs []*mergeRun, bufs []*bufio.Reader, m *merger, combine bool) (Extent, error) {
	active := make([]*mergeRun, 0, len(spills))
	for i, s := range spills {
		e := s.exts[p]
		if e.Records == 0 {
			continue // our own empty segment: nothing to merge
		}
		bufs[i].Reset(io.NewSectionReader(files[i], e.Offset, e.Length))
		runs[i].seg.reset(bufs[i], s.path)
		active = append(active, runs[i])
	}
	if err := m.init(active); err != nil {
		return Extent{}, err
	}
	if err := w.seg.begin(w.bw); err != nil {
		return Extent{}, err
	}
	if !combine {
		for key, ok := m.nextKey(); ok; key, ok = m.nextKey() {
			for v, ok := m.Next(); ok; v, ok = m.Next() {
				if err := w.seg.add(key, v); err != nil {
					return Extent{}, err
				}
			}
		}
	} else {
		w.cmb = combineState{part: p, last: w.cmb.last[:0]}
		for key, ok := m.nextKey(); ok; key, ok = m.nextKey() {
			before := m.records
			if err := w.combineGroup(key, m); err != nil {
				return Extent{}, err
			}
			for m.inGroup {
				m.Next()
			}
			w.stats.CombineInputRecords += m.records - before
		}
	}
	if m.err != nil {
		return Extent{}, m.err
	}
	return w.seg.finish()
}

// Abort drops the attempt's output: it removes Dir and everything in it.
// Safe to call after Close (the map task was killed after finishing).
func (w *Writer) Abort() {
	w.closed = true
	w.arena, w.meta, w.spills = nil, nil, nil
	os.RemoveAll(w.opts.Dir)
}
