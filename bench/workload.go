package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"runtime/pprof"
	"slices"
	"sync"
	"time"
)

// Workload names, in the order a run executes them (seqread and randread
// read the files seqwrite wrote).
const (
	WorkloadSeqWrite = "seqwrite"
	WorkloadSeqRead  = "seqread"
	WorkloadRandRead = "randread"
	WorkloadAppend   = "append"
	WorkloadStream   = "appendstream"
	WorkloadMetadata = "metadata"
)

// Workloads lists every workload in execution order; it is the default suite.
var Workloads = []string{WorkloadSeqWrite, WorkloadSeqRead, WorkloadRandRead, WorkloadAppend, WorkloadStream, WorkloadMetadata}

// ioBytes is the size of one sequential read or write operation.
const ioBytes = 1 << 20

// randRead sizes: uniform in [randReadMin, randReadMax].
const (
	randReadMin = 64 << 10
	randReadMax = 1 << 20
)

// metadataWindow is how many files a metadata client keeps before deleting
// the oldest (so lists stay small and every op kind runs at the same rate).
const metadataWindow = 8

// appendHeaderBytes opens every benchmark record: magic, client, sequence.
const (
	appendHeaderBytes = 16
	appendMagic       = 0x42534647 // "GFSB"
)

// workloadEnv is what one run's workloads share.
type workloadEnv struct {
	fss     []FS // one per client
	setup   FS   // preparation and verification
	pat     *Pattern
	runDir  string
	run     int
	opts    *Options
	prog    *progress
	label   string // progress label of the measured phase
	profile string // CPU profile file of the measured phase; "" = none
	written bool   // the seq files of this run exist
	// mr runs the MapReduce workloads (nil = none); localDir holds their
	// local input and reference output files.
	mr       *MRCluster
	localDir string
}

func (e *workloadEnv) seqPath(i int) string { return path.Join(e.runDir, fmt.Sprintf("seq-%d", i)) }

// seqID is the pattern stream of client i's sequential file.
func (e *workloadEnv) seqID(i int) uint64 { return uint64(e.run)<<32 | uint64(i) + 1 }

// appendID is the pattern stream of client i's records.
func (e *workloadEnv) appendID(i int) uint64 { return 1<<48 | uint64(e.run)<<32 | uint64(i) }

// parallel is a workload's measured phase: it runs fn for every client
// concurrently, each with its own Latencies, and returns the wall time from
// the first start to the last end and the merged latencies. The first error
// cancels the others. The progress line and the CPU profile cover exactly
// this phase.
func (e *workloadEnv) parallel(ctx context.Context, c *counters, fn func(ctx context.Context, i int, lat *Latencies) error) (*measurement, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if e.profile != "" {
		f, err := os.Create(e.profile)
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	stop := e.prog.start(e.label, c)
	defer stop()
	n := len(e.fss)
	lats := make([]Latencies, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i, &lats[i]); err != nil {
				errs[i] = fmt.Errorf("client %d: %w", i, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	m := &measurement{elapsed: time.Since(start), bytes: c.bytes.Load(), ops: c.ops.Load()}
	stop()
	for i := range lats {
		m.lat.Merge(&lats[i])
	}
	// Report the root cause, not the cancellations it caused in the others.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// seqWrite has every client create its own file and write SizeBytes to it
// sequentially in 1 MiB operations; the sizes are checked afterwards.
func (e *workloadEnv) seqWrite(ctx context.Context, c *counters) (*measurement, error) {
	m, err := e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) error {
		fs, p := e.fss[i], e.seqPath(i)
		if err := fs.Create(ctx, p); err != nil {
			return err
		}
		f, err := fs.Open(ctx, p)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, ioBytes)
		for off := int64(0); off < e.opts.SizeBytes; off += ioBytes {
			b := buf[:min(ioBytes, e.opts.SizeBytes-off)]
			e.pat.Fill(e.seqID(i), b, off)
			t0 := time.Now()
			if err := f.WriteAt(ctx, b, off); err != nil {
				return fmt.Errorf("write %s at %d: %w", p, off, err)
			}
			lat.Add(time.Since(t0))
			c.bytes.Add(int64(len(b)))
			c.ops.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.checkSizes(ctx); err != nil {
		return nil, err
	}
	e.written = true
	return m, nil
}

func (e *workloadEnv) checkSizes(ctx context.Context) error {
	for i := range e.fss {
		f, err := e.setup.Open(ctx, e.seqPath(i))
		if err != nil {
			return err
		}
		size, err := f.Length(ctx)
		f.Close()
		if err != nil {
			return err
		}
		if size != e.opts.SizeBytes {
			return &VerifyError{Path: e.seqPath(i), Offset: -1, Detail: fmt.Sprintf("size %d after writing %d bytes", size, e.opts.SizeBytes)}
		}
	}
	return nil
}

// ensureFiles writes the seq files (untimed) when seqwrite did not run.
func (e *workloadEnv) ensureFiles(ctx context.Context) error {
	if e.written {
		return nil
	}
	prep := *e
	prep.label, prep.profile = e.label+" (preparing files)", ""
	if _, err := prep.seqWrite(ctx, &counters{}); err != nil {
		return err
	}
	e.written = true
	return nil
}

// seqRead streams every client's file from start to end through the
// client's reader and verifies every byte and the length.
func (e *workloadEnv) seqRead(ctx context.Context, c *counters) (*measurement, error) {
	m, err := e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) error {
		p := e.seqPath(i)
		f, err := e.fss[i].Open(ctx, p)
		if err != nil {
			return err
		}
		defer f.Close()
		r := f.NewReader(ctx)
		defer r.Close()
		buf := make([]byte, ioBytes)
		var off int64
		for {
			t0 := time.Now()
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				lat.Add(time.Since(t0))
				if verr := e.pat.Verify(p, e.seqID(i), buf[:n], off); verr != nil {
					return verr
				}
				off += int64(n)
				c.bytes.Add(int64(n))
				c.ops.Add(1)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read %s at %d: %w", p, off, err)
			}
		}
		if off != e.opts.SizeBytes {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("stream ended after %d of %d bytes", off, e.opts.SizeBytes)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.verified = m.bytes
	return m, nil
}

// randRead has every client read random ranges (64 KiB to 1 MiB) of random
// seq files for Duration, verifying each.
func (e *workloadEnv) randRead(ctx context.Context, c *counters) (*measurement, error) {
	files := make([][]File, len(e.fss))
	defer func() {
		for _, fs := range files {
			for _, f := range fs {
				f.Close()
			}
		}
	}()
	for i, fs := range e.fss {
		for j := range e.fss {
			f, err := fs.Open(ctx, e.seqPath(j))
			if err != nil {
				return nil, err
			}
			files[i] = append(files[i], f)
		}
	}
	deadline := time.Now().Add(e.opts.Duration)
	m, err := e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) error {
		rng := rand.New(rand.NewPCG(e.opts.Seed, uint64(i)))
		buf := make([]byte, randReadMax)
		for running(ctx, deadline) {
			j := rng.IntN(len(files[i]))
			n := randReadMin + rng.IntN(randReadMax-randReadMin+1)
			off := rng.Int64N(e.opts.SizeBytes - int64(n) + 1)
			t0 := time.Now()
			got, err := files[i][j].ReadAt(ctx, buf[:n], off)
			if err != nil {
				return fmt.Errorf("read %s [%d, %d): %w", e.seqPath(j), off, off+int64(n), err)
			}
			lat.Add(time.Since(t0))
			if got != n {
				return &VerifyError{Path: e.seqPath(j), Offset: off, Detail: fmt.Sprintf("short read: %d of %d bytes", got, n)}
			}
			if err := e.pat.Verify(e.seqPath(j), e.seqID(j), buf[:n], off); err != nil {
				return err
			}
			c.bytes.Add(int64(n))
			c.ops.Add(1)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	m.verified = m.bytes
	return m, nil
}

// running says whether a timed workload goes on: before its deadline and
// while ctx lives (the loop's caller returns ctx.Err() after it).
func running(ctx context.Context, deadline time.Time) bool {
	return ctx.Err() == nil && time.Now().Before(deadline)
}

// appendRecord builds client i's record number seq.
func (e *workloadEnv) appendRecord(rec []byte, i int, seq uint64) {
	binary.LittleEndian.PutUint32(rec[0:], appendMagic)
	binary.LittleEndian.PutUint32(rec[4:], uint32(i))
	binary.LittleEndian.PutUint64(rec[8:], seq)
	e.pat.Fill(e.appendID(i), rec[appendHeaderBytes:], int64(seq)*int64(len(rec)))
}

// appendRecords has every client record-append RecordBytes-byte records to
// one shared file for Duration, then reads the file back through the record
// reader: every acknowledged record must be there, intact.
func (e *workloadEnv) appendRecords(ctx context.Context, c *counters) (*measurement, error) {
	p := path.Join(e.runDir, "append")
	if err := e.setup.Create(ctx, p); err != nil {
		return nil, err
	}
	acked := make([]uint64, len(e.fss))
	deadline := time.Now().Add(e.opts.Duration)
	m, err := e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) error {
		rec := make([]byte, e.opts.RecordBytes)
		for seq := uint64(0); running(ctx, deadline); seq++ {
			e.appendRecord(rec, i, seq)
			t0 := time.Now()
			if err := e.fss[i].RecordAppend(ctx, p, rec); err != nil {
				return fmt.Errorf("append record %d to %s: %w", seq, p, err)
			}
			lat.Add(time.Since(t0))
			acked[i] = seq + 1
			c.bytes.Add(int64(len(rec)))
			c.ops.Add(1)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	if err := e.verifyAppended(ctx, p, acked, m); err != nil {
		return nil, err
	}
	return m, nil
}

// verifyAppended checks the appended file (verifyRecords) and records the
// verified bytes and the duplicates in m.
func (e *workloadEnv) verifyAppended(ctx context.Context, p string, acked []uint64, m *measurement) error {
	dups, verified, err := e.verifyRecords(ctx, p, acked)
	if err != nil {
		return err
	}
	m.verified = verified
	if dups > 0 {
		m.note = fmt.Sprintf("%d duplicate records (at-least-once retries)", dups)
	}
	return nil
}

// streamRecords is appendRecords with every client pipelining its records
// through a RecordWriter with AppendWindow records in flight. A record's
// latency runs from its Append to the writer's first call that finds it
// acknowledged (records are acknowledged in order unless retried).
func (e *workloadEnv) streamRecords(ctx context.Context, c *counters) (*measurement, error) {
	p := path.Join(e.runDir, "appendstream")
	if err := e.setup.Create(ctx, p); err != nil {
		return nil, err
	}
	acked := make([]uint64, len(e.fss))
	deadline := time.Now().Add(e.opts.Duration)
	m, err := e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) (err error) {
		w, err := e.fss[i].NewRecordWriter(ctx, p, e.opts.AppendWindow)
		if err != nil {
			return err
		}
		rec := make([]byte, e.opts.RecordBytes)
		var sent []time.Time // send times of records not yet seen acknowledged
		settled := uint64(0)
		note := func(seq uint64, inFlight int) {
			now := time.Now()
			for ; settled+uint64(inFlight) < seq; settled++ {
				lat.Add(now.Sub(sent[0]))
				sent = sent[1:]
				c.bytes.Add(int64(len(rec)))
				c.ops.Add(1)
			}
		}
		seq := uint64(0)
		for ; running(ctx, deadline); seq++ {
			e.appendRecord(rec, i, seq)
			sent = append(sent, time.Now())
			if err := w.Append(rec); err != nil {
				w.Close()
				return fmt.Errorf("append record %d to %s: %w", seq, p, err)
			}
			note(seq+1, w.InFlight())
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("flush records to %s: %w", p, err)
		}
		note(seq, 0)
		acked[i] = seq
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	if err := e.verifyAppended(ctx, p, acked, m); err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d records in flight per client", e.opts.AppendWindow)
	if m.note != "" {
		note += "; " + m.note
	}
	m.note = note
	return m, nil
}

// verifyRecords reads the append file back and checks that every record is
// a well-formed benchmark record, and that every acknowledged one is present.
func (e *workloadEnv) verifyRecords(ctx context.Context, p string, acked []uint64) (dups int, verified int64, err error) {
	seen := make([][]bool, len(acked))
	for i, n := range acked {
		seen[i] = make([]bool, n)
	}
	want := make([]byte, e.opts.RecordBytes)
	var index int
	err = e.setup.ReadRecords(ctx, p, func(rec []byte) error {
		index++
		if len(rec) != e.opts.RecordBytes || binary.LittleEndian.Uint32(rec) != appendMagic {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("record %d: %d bytes, not a benchmark record", index, len(rec))}
		}
		i := int(binary.LittleEndian.Uint32(rec[4:]))
		seq := binary.LittleEndian.Uint64(rec[8:])
		if i >= len(acked) || seq >= acked[i] {
			// Possible only for an append that failed, and a failure fails the run.
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("record %d: client %d sequence %d was never acknowledged", index, i, seq)}
		}
		e.appendRecord(want, i, seq)
		if !slices.Equal(rec, want) {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("record %d (client %d sequence %d): content differs from what was appended", index, i, seq)}
		}
		if seen[i][seq] {
			dups++
		} else {
			seen[i][seq] = true
			verified += int64(len(rec))
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for i := range seen {
		if k := slices.Index(seen[i], false); k >= 0 {
			missing := 0
			for _, s := range seen[i] {
				if !s {
					missing++
				}
			}
			return 0, 0, &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("%d acknowledged records of client %d missing (first: sequence %d)", missing, i, k)}
		}
	}
	return dups, verified, nil
}

// metadata has every client, for Duration, create a file, stat it, list its
// directory and delete the file created metadataWindow iterations earlier;
// each call is one op. Answers are checked (size 0, the new name listed).
func (e *workloadEnv) metadata(ctx context.Context, c *counters) (*measurement, error) {
	dirs := make([]string, len(e.fss))
	for i := range dirs {
		dirs[i] = path.Join(e.runDir, fmt.Sprintf("meta-%d", i))
		if err := e.setup.Mkdir(ctx, dirs[i]); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(e.opts.Duration)
	return e.parallel(ctx, c, func(ctx context.Context, i int, lat *Latencies) error {
		fs := e.fss[i]
		op := func(f func() error) error {
			t0 := time.Now()
			if err := f(); err != nil {
				return err
			}
			lat.Add(time.Since(t0))
			c.ops.Add(1)
			return nil
		}
		name := func(k int) string { return fmt.Sprintf("f-%d", k) }
		for k := 0; running(ctx, deadline); k++ {
			p := path.Join(dirs[i], name(k))
			if err := op(func() error { return fs.Create(ctx, p) }); err != nil {
				return fmt.Errorf("create %s: %w", p, err)
			}
			var size int64
			if err := op(func() (err error) { size, err = fs.Stat(ctx, p); return err }); err != nil {
				return fmt.Errorf("stat %s: %w", p, err)
			}
			if size != 0 {
				return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("new file has size %d", size)}
			}
			var names []string
			if err := op(func() (err error) { names, err = fs.List(ctx, dirs[i]); return err }); err != nil {
				return fmt.Errorf("list %s: %w", dirs[i], err)
			}
			if !slices.Contains(names, name(k)) || len(names) > metadataWindow+1 {
				return &VerifyError{Path: dirs[i], Offset: -1, Detail: fmt.Sprintf("list after creating %s returned %d names %v", name(k), len(names), names)}
			}
			if k >= metadataWindow {
				old := path.Join(dirs[i], name(k-metadataWindow))
				if err := op(func() error { return fs.Delete(ctx, old) }); err != nil {
					return fmt.Errorf("delete %s: %w", old, err)
				}
			}
		}
		return ctx.Err()
	})
}
