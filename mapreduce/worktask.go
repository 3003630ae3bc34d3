package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/mapreduce/input"
	"github.com/gfs-go/gfs/mapreduce/mrpb"
	"github.com/gfs-go/gfs/mapreduce/shuffle"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// runMap reads one split through the client library (a local replica when
// the coordinator placed the attempt beside one), feeds the records to the
// user's map function and leaves R sorted partitions on the local disk.
func (w *Worker) runMap(ctx context.Context, id tasktable.AttemptID, a *mrpb.Assignment) (tasktable.Counters, error) {
	var cnt tasktable.Counters
	job, err := w.opts.Apps.Build(a.GetApp(), Config(a.GetConf()))
	if err != nil {
		return cnt, err
	}
	format, err := ParseInputFormat(a.GetInputFormat())
	if err != nil {
		return cnt, err
	}
	reduces := int(a.GetReduces())
	if reduces < 1 {
		return cnt, fmt.Errorf("assignment with %d reduces", reduces)
	}
	dir := w.attemptDir(id)
	var combine shuffle.CombineFunc
	if job.Combine != nil {
		combine = func(key []byte, values shuffle.Values, emit func(key, value []byte) error) error {
			return job.Combine(ctx, key, values, Emit(emit))
		}
	}
	out, err := shuffle.NewWriter(shuffle.WriterOptions{
		Dir: dir, Reduces: reduces, Combine: combine, SortBufferBytes: w.opts.SortBufferBytes,
		Partition: func(key []byte) (int, error) { return job.PartitionOf(key, reduces) },
	})
	if err != nil {
		return cnt, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Abort()
		}
	}()
	// A mapper with a child process (streaming) must always be finished,
	// also when the attempt fails: cancel its context first, then Finish
	// reaps the child.
	mctx, mcancel := context.WithCancel(ctx)
	defer mcancel()
	mapper, err := job.NewMapper(mctx)
	if err != nil {
		return cnt, err
	}
	finished := false
	defer func() {
		if !finished {
			mcancel()
			_ = mapper.Finish(mctx, func(k, v []byte) error { return context.Canceled })
		}
	}()
	f, err := w.opts.FS.Open(ctx, a.GetPath())
	if err != nil {
		return cnt, fmt.Errorf("input %s: %w", a.GetPath(), err)
	}
	src := readerAt{ctx: ctx, f: f}
	split := input.Split{Path: a.GetPath(), Offset: a.GetOffset(), Length: a.GetLength(), FileSize: a.GetFileSize()}
	emit := Emit(out.Emit)
	rec := Record{Path: a.GetPath()}
	fn := func(off int64, data []byte) error {
		rec.Offset, rec.Data = off, data
		if err := mapper.Map(mctx, rec, emit); err != nil {
			return fmt.Errorf("map of %s at offset %d: %w", a.GetPath(), off, err)
		}
		return nil
	}
	var st input.Stats
	if format == RecordInput {
		st, err = input.Records(ctx, src, split, a.GetChunkSize(), fn)
	} else {
		st, err = input.Text(ctx, src, split, fn)
	}
	if err == nil {
		finished = true
		err = mapper.Finish(mctx, emit)
	}
	if err != nil {
		return cnt, err
	}
	stats, err := out.Close()
	if err != nil {
		return cnt, err
	}
	ok = true
	w.mu.Lock()
	w.outputs[mapKey{string(id.Task.Job), id.Task.Index, id.Attempt}] = dir
	w.mu.Unlock()
	// Input bytes are the split's own (they add up to the input's size);
	// the reader also reads a little past the split to finish its last
	// record.
	cnt.InputRecords, cnt.InputBytes = st.Records, a.GetLength()
	cnt.MapOutputRecords, cnt.MapOutputBytes = stats.OutputRecords, stats.OutputBytes
	cnt.CombineInputRecords, cnt.CombineOutputRecords = stats.CombineInputRecords, stats.CombineOutputRecords
	cnt.SpilledRecords = stats.SpilledRecords
	return cnt, nil
}

// readerAt reads a GFS file under the attempt's context.
type readerAt struct {
	ctx context.Context
	f   *client.File
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAtContext(r.ctx, p, off) }

// fetchParallel is how many map outputs a reduce attempt fetches at once
// (Hadoop's mapreduce.reduce.shuffle.parallelcopies is 5).
const fetchParallel = 5

// mapOutputPoll is how often a reduce attempt asks for map outputs it
// still misses (re-executed maps).
const mapOutputPoll = 200 * time.Millisecond

// runReduce fetches its partition of every map output, merges them in
// bounded memory, runs the user's reduce function and writes the output
// under the attempt's temporary name in GFS; the coordinator renames it
// into place when it commits.
func (w *Worker) runReduce(ctx context.Context, wid string, id tasktable.AttemptID, a *mrpb.Assignment) (tasktable.Counters, error) {
	var cnt tasktable.Counters
	job, err := w.opts.Apps.Build(a.GetApp(), Config(a.GetConf()))
	if err != nil {
		return cnt, err
	}
	dir := w.attemptDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cnt, err
	}
	runs, shuffled, err := w.fetchAll(ctx, wid, id, dir)
	if err != nil {
		return cnt, err
	}
	cnt.ShuffleBytes = shuffled
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	reducer, err := job.NewReducer(rctx)
	if err != nil {
		return cnt, err
	}
	finished := false
	defer func() {
		if !finished {
			rcancel()
			_ = reducer.Finish(rctx, func(k, v []byte) error { return context.Canceled })
		}
	}()
	temp := a.GetTemp()
	out, err := createOutput(ctx, w.opts.FS, temp)
	if err != nil {
		return cnt, err
	}
	defer out.abort()
	emit := func(key, value []byte) error {
		cnt.OutputRecords++
		return out.writeLine(key, value)
	}
	var groups int64
	records, err := shuffle.Merge(ctx, runs, shuffle.MergeOptions{TmpDir: filepath.Join(dir, "merge")}, func(key []byte, values shuffle.Values) error {
		groups++
		if err := reducer.Reduce(rctx, key, values, emit); err != nil {
			return fmt.Errorf("reduce of key %.64q: %w", key, err)
		}
		return nil
	})
	if err == nil {
		finished = true
		err = reducer.Finish(rctx, emit)
	}
	if err == nil {
		err = out.close()
	}
	if err != nil {
		return cnt, err
	}
	cnt.ReduceInputGroups, cnt.ReduceInputRecords = groups, records
	cnt.OutputBytes = out.off
	return cnt, nil
}

// fetchAll fetches this reduce attempt's partition of every map output into
// dir, asking the coordinator again for outputs that are missing (a map
// running again after its worker died or its output failed to fetch).
func (w *Worker) fetchAll(ctx context.Context, wid string, id tasktable.AttemptID, dir string) ([]string, int64, error) {
	part := id.Task.Index
	job := string(id.Task.Job)
	have := map[int]string{}
	var total int64
	for {
		resp, err := w.coord.MapOutputs(ctx, &mrpb.MapOutputsRequest{WorkerId: wid, Attempt: attemptPB(id)})
		if err != nil {
			if status.Code(err) == codes.Aborted || status.Code(err) == codes.NotFound {
				return nil, 0, fmt.Errorf("map outputs: %w", err)
			}
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			sleep(ctx, mapOutputPoll)
			continue
		}
		var todo []*mrpb.MapOutputLocation
		for _, m := range resp.GetMaps() {
			if _, ok := have[int(m.GetIndex())]; !ok {
				todo = append(todo, m)
			}
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, fetchParallel)
		for _, m := range todo {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				dst := filepath.Join(dir, fmt.Sprintf("m%05d.%d.seg", m.GetIndex(), m.GetAttempt()))
				n, err := shuffle.Fetch(ctx, w.fetch, w.scheme+"://"+m.GetShuffleAddr(), job, int(m.GetIndex()), int(m.GetAttempt()), part, dst)
				if err != nil {
					_ = os.Remove(dst)
					if ctx.Err() != nil {
						return
					}
					w.log.Warn("shuffle fetch failed", "reduce", id, "map", m.GetIndex(), "from", m.GetShuffleAddr(), "err", err)
					mid := tasktable.AttemptID{Task: tasktable.TaskID{Job: id.Task.Job, Kind: tasktable.Map, Index: int(m.GetIndex())}, Attempt: int(m.GetAttempt())}
					rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, _ = w.coord.ReportFetchFailure(rctx, &mrpb.ReportFetchFailureRequest{WorkerId: wid, Attempt: attemptPB(id), Map: attemptPB(mid), Reason: err.Error()})
					cancel()
					return
				}
				mu.Lock()
				have[int(m.GetIndex())] = dst
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if len(have) >= int(resp.GetTotal()) {
			break
		}
		sleep(ctx, mapOutputPoll)
	}
	runs := make([]string, 0, len(have))
	for i := range len(have) {
		p, ok := have[i]
		if !ok {
			return nil, 0, errors.New("shuffle: map output index out of range")
		}
		runs = append(runs, p)
	}
	return runs, total, nil
}

// outputWriter writes a reduce attempt's lines to a GFS file in large
// sequential writes, one write in flight while the next buffer fills.
type outputWriter struct {
	ctx     context.Context
	fs      *client.Client
	path    string
	f       *client.File
	buf     []byte
	spare   []byte
	off     int64 // bytes handed to writes
	pending chan error
	closed  bool
}

const outputBufferBytes = 4 << 20

func createOutput(ctx context.Context, fs *client.Client, p string) (*outputWriter, error) {
	if err := fs.Create(ctx, p, client.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("output %s: %w", p, err)
	}
	f, err := fs.Open(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", p, err)
	}
	return &outputWriter{ctx: ctx, fs: fs, path: p, f: f,
		buf: make([]byte, 0, outputBufferBytes), spare: make([]byte, 0, outputBufferBytes)}, nil
}

// writeLine appends "key\tvalue\n", or "key\n" for an empty value.
func (o *outputWriter) writeLine(key, value []byte) error {
	n := len(key) + 1
	if len(value) > 0 {
		n += 1 + len(value)
	}
	if len(o.buf)+n > cap(o.buf) && len(o.buf) > 0 {
		if err := o.flush(); err != nil {
			return err
		}
	}
	o.buf = append(o.buf, key...)
	if len(value) > 0 {
		o.buf = append(o.buf, '\t')
		o.buf = append(o.buf, value...)
	}
	o.buf = append(o.buf, '\n')
	return nil
}

func (o *outputWriter) wait() error {
	if o.pending == nil {
		return nil
	}
	err := <-o.pending
	o.pending = nil
	return err
}

func (o *outputWriter) flush() error {
	if err := o.wait(); err != nil {
		return err
	}
	if len(o.buf) == 0 {
		return nil
	}
	data, off := o.buf, o.off
	o.off += int64(len(data))
	o.pending = make(chan error, 1)
	go func(ch chan error) {
		_, err := o.f.WriteAtContext(o.ctx, data, off)
		if err != nil {
			err = fmt.Errorf("output %s: %w", o.path, err)
		}
		ch <- err
	}(o.pending)
	o.buf, o.spare = o.spare[:0], data
	return nil
}

func (o *outputWriter) close() error {
	if err := o.flush(); err != nil {
		return err
	}
	if err := o.wait(); err != nil {
		return err
	}
	o.closed = true
	return nil
}

// abort removes the temporary output unless close succeeded (the
// coordinator owns it then).
func (o *outputWriter) abort() {
	_ = o.wait()
	if o.closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(o.ctx), 10*time.Second)
	defer cancel()
	_ = o.fs.Delete(ctx, o.path, false)
}
