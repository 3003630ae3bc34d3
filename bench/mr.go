package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/gfs-go/gfs/mapreduce"
)

// MapReduce workload names. They are not in Workloads (the default suite):
// they are opt-in, sized by Options.MRInputBytes.
const (
	WorkloadWordCount = "wordcount"
	WorkloadSort      = "sort"
)

// MRWorkloads are the MapReduce workloads, in execution order after Workloads.
var MRWorkloads = []string{WorkloadWordCount, WorkloadSort}

// AllWorkloads is every workload a run can select, in execution order.
var AllWorkloads = append(slices.Clone(Workloads), MRWorkloads...)

// DefaultMRInputBytes is the MapReduce workloads' input size.
const DefaultMRInputBytes = 256 << 20

// BaselineSequential names the MapReduce workloads' baseline: the same job
// in one goroutine over the same bytes read from a local file, measured in
// the same run (reported in Result.MR, not in Report.Baselines).
const BaselineSequential = "sequential"

// sortRecordBytes is a sort input record: 99 printable bytes and "\n".
const sortRecordBytes = 100

// sortKeyBytes orders the records (apps.SortKeyBytes).
const sortKeyBytes = 10

// wordcountVocabulary is the number of distinct words of the wordcount input.
const wordcountVocabulary = 4000

// MRCluster is a running MapReduce coordinator with its workers.
type MRCluster struct {
	Client  *mapreduce.Client
	Workers int
	Slots   int // per worker
	// Close stops the workers and the coordinator and closes Client.
	Close func() error
}

// MRFigures are a MapReduce workload's figures beside the headline (the
// job's input MiB/s) and its ratio to the sequential reference.
type MRFigures struct {
	Maps    int64 `json:"maps"`
	Reduces int64 `json:"reduces"`
	// ReferenceMiBPerS is the sequential reference over the input bytes.
	ReferenceMiBPerS float64 `json:"reference_mib_per_s"`
	ReferenceSeconds float64 `json:"reference_seconds"`
	// IOFloorMiBPerS (sort only) is input bytes over the time to read the
	// input once from GFS and write as many bytes once into a new GFS file;
	// IOFloorRatio is the job's MiB/s over it (1 = as fast as the floor).
	IOFloorMiBPerS float64 `json:"io_floor_mib_per_s,omitempty"`
	IOFloorSeconds float64 `json:"io_floor_seconds,omitempty"`
	IOFloorRatio   float64 `json:"io_floor_ratio,omitempty"`
	// DataLocalFraction is data-local maps over all maps.
	DataLocalFraction float64 `json:"data_local_fraction"`
	// Phases as the coordinator reports them: map (submission to the last
	// map done), reduce (to the last partition committed), commit (to
	// _SUCCESS written).
	MapSeconds    float64 `json:"map_seconds"`
	ReduceSeconds float64 `json:"reduce_seconds"`
	CommitSeconds float64 `json:"commit_seconds"`
	// VerifiedRecords are the output lines checked (wordcount: distinct
	// words whose counts summed to the reference's total; sort: records in
	// global order whose multiset hash matched the input's).
	VerifiedRecords int64 `json:"verified_records"`
}

// mrInput is a generated input: GFS files under dir, the same bytes
// concatenated in local.
type mrInput struct {
	dir   string
	files []string
	local string
	bytes int64
}

// mrWorkload runs a MapReduce workload: input (untimed), sequential
// reference, I/O floor (sort), the job, verification.
func (e *workloadEnv) mrWorkload(ctx context.Context, w string) (Result, error) {
	mr := e.mr
	base := Result{Workload: w, Unit: UnitMiBPerS, Runs: 1, Baseline: BaselineSequential}
	if mr == nil {
		base.Note = "skipped: the target has no MapReduce (an existing cluster given by -master)"
		base.Values = []float64{0}
		return base, nil
	}
	base.Clients = mr.Workers
	slots := mr.Workers * mr.Slots
	if slots < 1 {
		slots = 4
	}
	gfsDir := path.Join(e.runDir, w)
	localDir := filepath.Join(e.localDir, w)
	if err := os.MkdirAll(localDir, 0o755); err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(localDir)
	defer e.setup.Delete(context.WithoutCancel(ctx), gfsDir)

	// 1. Input, in 2 files per slot so that every slot gets maps.
	stop := e.prog.start(e.label+" (writing input)", &counters{})
	in, err := e.writeMRInput(ctx, w, gfsDir, localDir, 2*slots)
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("write input: %w", err)
	}
	base.Bytes = in.bytes
	mib := float64(in.bytes) / (1 << 20)

	// 2. Sequential reference.
	stop = e.prog.start(e.label+" (sequential reference)", &counters{})
	t0 := time.Now()
	var ref mrReference
	if w == WorkloadWordCount {
		ref, err = referenceWordCount(in.local, filepath.Join(localDir, "reference.out"))
	} else {
		ref, err = referenceSort(in.local, filepath.Join(localDir, "reference.out"))
	}
	refSecs := time.Since(t0).Seconds()
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("sequential reference: %w", err)
	}
	fig := &MRFigures{ReferenceSeconds: refSecs, ReferenceMiBPerS: mib / refSecs}

	// 3. I/O floor.
	if w == WorkloadSort {
		stop = e.prog.start(e.label+" (I/O floor)", &counters{})
		secs, err := e.ioFloor(ctx, in, path.Join(gfsDir, "floor"))
		stop()
		if err != nil {
			return Result{}, fmt.Errorf("I/O floor: %w", err)
		}
		fig.IOFloorSeconds, fig.IOFloorMiBPerS = secs, mib/secs
	}

	// 4. The job.
	out := path.Join(gfsDir, "out")
	stop = e.prog.start(e.label, &counters{})
	t0 = time.Now()
	id, err := mr.Client.Submit(ctx, mapreduce.JobRequest{App: w, Inputs: []string{in.dir}, Output: out, Reduces: slots, User: "bench"})
	var st mapreduce.JobStatus
	if err == nil {
		st, err = mr.Client.Wait(ctx, id, 100*time.Millisecond, nil)
	}
	wall := time.Since(t0)
	stop()
	if err != nil {
		return Result{}, fmt.Errorf("job: %w", err)
	}
	// The coordinator's own clock excludes the polling interval.
	elapsed := wall
	if !st.Ended.IsZero() && st.Ended.After(st.Submitted) {
		elapsed = st.Ended.Sub(st.Submitted)
	}
	stop = e.prog.start(e.label+" (verifying)", &counters{})
	if w == WorkloadWordCount {
		fig.VerifiedRecords, err = e.verifyWordCount(ctx, out, ref)
	} else {
		fig.VerifiedRecords, err = e.verifySort(ctx, out, ref)
	}
	stop()
	if err != nil {
		return Result{}, err
	}

	// 5. Figures.
	c := st.Counters
	fig.Maps, fig.Reduces = c.MapTasks, c.ReduceTasks
	if c.MapTasks > 0 {
		fig.DataLocalFraction = float64(c.DataLocalMaps) / float64(c.MapTasks)
	}
	fig.MapSeconds = st.MapPhase.Seconds()
	fig.ReduceSeconds = st.ReducePhase.Seconds()
	fig.CommitSeconds = st.CommitPhase.Seconds()
	base.Seconds = elapsed.Seconds()
	base.Ops = c.MapTasks + c.ReduceTasks
	base.MiBPerS = mib / base.Seconds
	base.OpsPerS = float64(base.Ops) / base.Seconds
	base.BaselineValue = fig.ReferenceMiBPerS
	base.Ratio = base.MiBPerS / fig.ReferenceMiBPerS
	if fig.IOFloorMiBPerS > 0 {
		fig.IOFloorRatio = base.MiBPerS / fig.IOFloorMiBPerS
	}
	base.VerifiedBytes = in.bytes
	base.Values = []float64{base.MiBPerS}
	base.MR = fig
	return base, nil
}

// writeMRInput generates w's input from the run's seed into files GFS files
// under dir and, concatenated, into one local file.
func (e *workloadEnv) writeMRInput(ctx context.Context, w, dir, localDir string, files int) (*mrInput, error) {
	in := &mrInput{dir: path.Join(dir, "in"), local: filepath.Join(localDir, "input")}
	if err := e.setup.Mkdir(ctx, in.dir); err != nil {
		return nil, err
	}
	lf, err := os.Create(in.local)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	rng := rand.New(rand.NewPCG(e.opts.Seed, uint64(e.run)<<8|uint64(len(w))))
	var gen func(buf []byte, n int) []byte // appends whole lines until len(buf) >= n
	per := e.opts.MRInputBytes / int64(files)
	if w == WorkloadWordCount {
		gen = newWordGenerator(rng)
	} else {
		per -= per % sortRecordBytes // whole records: exactly per bytes a file
		gen = func(buf []byte, n int) []byte {
			for len(buf) < n {
				for range sortRecordBytes - 1 {
					buf = append(buf, byte(' '+1+rng.IntN('~'-' ')))
				}
				buf = append(buf, '\n')
			}
			return buf
		}
	}
	buf := make([]byte, 0, ioBytes+256<<10)
	for i := range files {
		p := path.Join(in.dir, fmt.Sprintf("part-%03d", i))
		if err := e.setup.Create(ctx, p); err != nil {
			return nil, err
		}
		f, err := e.setup.Open(ctx, p)
		if err != nil {
			return nil, err
		}
		var off int64
		for off < per {
			buf = gen(buf[:0], int(min(ioBytes-ioBytes%sortRecordBytes, per-off)))
			if err := f.WriteAt(ctx, buf, off); err != nil {
				f.Close()
				return nil, fmt.Errorf("write %s at %d: %w", p, off, err)
			}
			if _, err := lf.Write(buf); err != nil {
				f.Close()
				return nil, err
			}
			off += int64(len(buf))
		}
		f.Close()
		in.files = append(in.files, p)
		in.bytes += off
	}
	return in, lf.Close()
}

// newWordGenerator returns a generator of text lines: 4 to 16 words from a
// vocabulary of wordcountVocabulary lowercase words drawn with Zipf
// frequencies, separated by spaces and now and then ", ".
func newWordGenerator(rng *rand.Rand) func([]byte, int) []byte {
	seen := map[string]bool{}
	vocab := make([]string, 0, wordcountVocabulary)
	for len(vocab) < wordcountVocabulary {
		b := make([]byte, 1+rng.IntN(10))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			vocab = append(vocab, string(b))
		}
	}
	zipf := rand.NewZipf(rng, 1.1, 2, wordcountVocabulary-1)
	return func(buf []byte, limit int) []byte {
		for len(buf) < limit {
			n := 4 + rng.IntN(13)
			for j := range n {
				if j > 0 {
					if rng.IntN(10) == 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, ' ')
				}
				buf = append(buf, vocab[zipf.Uint64()]...)
			}
			buf = append(buf, '\n')
		}
		return buf
	}
}

// mrReference is what the sequential reference found, for verification.
type mrReference struct {
	words    int64  // wordcount: total words
	distinct int64  // wordcount: distinct words
	records  int64  // sort: lines
	hash     uint64 // sort: sum of the lines' FNV-1a hashes (order-free)
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// referenceWordCount is wordcount in one goroutine: count every word of
// the local input in a map, sort the words, write "word\tcount\n" lines.
func referenceWordCount(input, output string) (mrReference, error) {
	b, err := os.ReadFile(input)
	if err != nil {
		return mrReference{}, err
	}
	counts := map[string]int{}
	var ref mrReference
	for i := 0; i < len(b); {
		if !isLetter(b[i]) {
			i++
			continue
		}
		j := i + 1
		for j < len(b) && isLetter(b[j]) {
			j++
		}
		counts[string(b[i:j])]++
		ref.words++
		i = j
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)
	ref.distinct = int64(len(words))
	f, err := os.Create(output)
	if err != nil {
		return ref, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	for _, w := range words {
		line = append(append(line[:0], w...), '\t')
		line = strconv.AppendInt(line, int64(counts[w]), 10)
		bw.Write(append(line, '\n'))
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return ref, err
	}
	return ref, f.Close()
}

// referenceSort is sort in one goroutine: read the local input's lines,
// sort them by their 10-byte key, write them.
func referenceSort(input, output string) (mrReference, error) {
	b, err := os.ReadFile(input)
	if err != nil {
		return mrReference{}, err
	}
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b) - 1
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	var ref mrReference
	for _, l := range lines {
		ref.hash += lineHash(l)
	}
	ref.records = int64(len(lines))
	slices.SortFunc(lines, func(x, y []byte) int { return bytes.Compare(x[:sortKeyBytes], y[:sortKeyBytes]) })
	f, err := os.Create(output)
	if err != nil {
		return ref, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for _, l := range lines {
		bw.Write(l)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return ref, err
	}
	return ref, f.Close()
}

// lineHash is a line's FNV-1a hash, its "\n" excluded.
func lineHash(l []byte) uint64 {
	h := fnv.New64a()
	h.Write(bytes.TrimSuffix(l, []byte("\n")))
	return h.Sum64()
}

// ioFloor reads every input file from GFS once, sequentially, and writes
// as many bytes once into a new GFS file p, returning the seconds.
func (e *workloadEnv) ioFloor(ctx context.Context, in *mrInput, p string) (float64, error) {
	if err := e.setup.Create(ctx, p); err != nil {
		return 0, err
	}
	defer e.setup.Delete(context.WithoutCancel(ctx), p)
	t0 := time.Now()
	buf := make([]byte, ioBytes)
	var read int64
	for _, name := range in.files {
		f, err := e.setup.Open(ctx, name)
		if err != nil {
			return 0, err
		}
		r := f.NewReader(ctx)
		n, err := io.CopyBuffer(io.Discard, r, buf)
		r.Close()
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", name, err)
		}
		read += n
	}
	if read != in.bytes {
		return 0, &VerifyError{Path: in.dir, Offset: -1, Detail: fmt.Sprintf("read %d of %d input bytes", read, in.bytes)}
	}
	f, err := e.setup.Open(ctx, p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for off := int64(0); off < in.bytes; off += ioBytes {
		if err := f.WriteAt(ctx, buf[:min(ioBytes, in.bytes-off)], off); err != nil {
			return 0, fmt.Errorf("write %s at %d: %w", p, off, err)
		}
	}
	return time.Since(t0).Seconds(), nil
}

// eachOutputLine calls fn with every line of the job's part files in
// partition order (the line includes its "\n").
func (e *workloadEnv) eachOutputLine(ctx context.Context, out string, fn func(part string, line []byte) error) error {
	names, err := e.setup.List(ctx, out)
	if err != nil {
		return err
	}
	if !slices.Contains(names, "_SUCCESS") {
		return &VerifyError{Path: out, Offset: -1, Detail: "no _SUCCESS after the job succeeded"}
	}
	slices.Sort(names) // part-r-%05d: name order is partition order
	for _, name := range names {
		if name == "_SUCCESS" {
			continue
		}
		p := path.Join(out, name)
		f, err := e.setup.Open(ctx, p)
		if err != nil {
			return err
		}
		r := f.NewReader(ctx)
		br := bufio.NewReaderSize(r, 1<<20)
		for err == nil {
			var line []byte
			line, err = br.ReadSlice('\n')
			if len(line) > 0 {
				if ferr := fn(p, line); ferr != nil {
					err = ferr
				}
			}
		}
		r.Close()
		f.Close()
		if !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// verifyWordCount checks that the output has the reference's distinct
// words and that their counts sum to its total.
func (e *workloadEnv) verifyWordCount(ctx context.Context, out string, ref mrReference) (int64, error) {
	var lines, total int64
	err := e.eachOutputLine(ctx, out, func(p string, line []byte) error {
		word, count, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte("\t"))
		n, err := strconv.ParseInt(string(count), 10, 64)
		if !ok || err != nil || len(word) == 0 || n < 1 {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("line %d %q is not word\\tcount", lines+1, line)}
		}
		lines++
		total += n
		return nil
	})
	if err != nil {
		return 0, err
	}
	if lines != ref.distinct || total != ref.words {
		return 0, &VerifyError{Path: out, Offset: -1, Detail: fmt.Sprintf("%d words, %d in all; the reference counted %d words, %d in all",
			lines, total, ref.distinct, ref.words)}
	}
	return lines, nil
}

// verifySort checks that the output has as many records as the input, in
// non-decreasing key order across the part files, and the same multiset
// of records (sum of hashes).
func (e *workloadEnv) verifySort(ctx context.Context, out string, ref mrReference) (int64, error) {
	var n int64
	var hash uint64
	var prev [sortKeyBytes]byte
	err := e.eachOutputLine(ctx, out, func(p string, line []byte) error {
		if len(line) != sortRecordBytes {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("record %d has %d bytes, want %d", n+1, len(line), sortRecordBytes)}
		}
		if n > 0 && bytes.Compare(line[:sortKeyBytes], prev[:]) < 0 {
			return &VerifyError{Path: p, Offset: -1, Detail: fmt.Sprintf("record %d's key %q sorts before the one before, %q", n+1, line[:sortKeyBytes], prev[:])}
		}
		copy(prev[:], line)
		hash += lineHash(line)
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n != ref.records || hash != ref.hash {
		return 0, &VerifyError{Path: out, Offset: -1, Detail: fmt.Sprintf("%d records (hash %x); the input has %d (hash %x)", n, hash, ref.records, ref.hash)}
	}
	return n, nil
}
