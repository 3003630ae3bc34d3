package apps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/input"
)

// Sequential runs job in one goroutine, in memory: it runs job.Prepare (when
// set) over the inputs with conf, maps every record of each input file (one
// map task per file, its output combined when the job has a combiner),
// partitions the map output with the job's partitioner, sorts each
// partition by key, and reduces it (one reduce task per partition), calling
// out with each output line ("key\tvalue\n", or "key\n" for an empty
// value) and its partition, partitions in order; line is valid only
// during the call. read returns a file's
// bytes. It is the reference a distributed run of the same job must match,
// and the single-process baseline of the benchmarks; it holds the whole
// map output in memory.
//
// Record input is read with a lookback of the whole file, so every
// duplicate is dropped. conf may be nil when the job has no Prepare.
func Sequential(ctx context.Context, job *mapreduce.Job, inputs []mapreduce.InputFile, read func(path string) ([]byte, error), reduces int, conf mapreduce.Config, out func(partition int, line []byte) error) error {
	if err := job.Check(); err != nil {
		return err
	}
	if reduces < 1 {
		return fmt.Errorf("sequential: %d reduces (want at least 1)", reduces)
	}
	data := make(map[string][]byte, len(inputs))
	load := func(path string) ([]byte, error) {
		if b, ok := data[path]; ok {
			return b, nil
		}
		b, err := read(path)
		if err != nil {
			return nil, fmt.Errorf("sequential: read %s: %w", path, err)
		}
		data[path] = b
		return b, nil
	}
	if job.Prepare != nil {
		if conf == nil {
			conf = mapreduce.Config{}
		}
		if err := job.Prepare(ctx, &memInput{files: inputs, load: load}, reduces, conf); err != nil {
			return fmt.Errorf("sequential: prepare: %w", err)
		}
	}

	parts := make([][]pair, reduces)
	for _, f := range inputs {
		b, err := load(f.Path)
		if err != nil {
			return err
		}
		mapped, err := mapFile(ctx, job, f.Path, b)
		if err != nil {
			return err
		}
		if job.Combine != nil {
			if mapped, err = reduceRun(ctx, mapped, func(key []byte, v mapreduce.Values, emit mapreduce.Emit) error {
				return job.Combine(ctx, key, v, emit)
			}); err != nil {
				return fmt.Errorf("sequential: combine %s: %w", f.Path, err)
			}
		}
		for _, kv := range mapped {
			p, err := job.PartitionOf(kv.key, reduces)
			if err != nil {
				return fmt.Errorf("sequential: %w", err)
			}
			parts[p] = append(parts[p], kv)
		}
	}

	for p, kvs := range parts {
		r, err := job.NewReducer(ctx)
		if err != nil {
			return fmt.Errorf("sequential: reduce task %d: %w", p, err)
		}
		var line []byte
		emit := func(key, value []byte) error {
			line = appendOutputLine(line[:0], key, value)
			return out(p, line)
		}
		if _, err := reduceRun(ctx, kvs, func(key []byte, v mapreduce.Values, _ mapreduce.Emit) error {
			return r.Reduce(ctx, key, v, emit)
		}); err != nil {
			return fmt.Errorf("sequential: reduce partition %d: %w", p, err)
		}
		if err := r.Finish(ctx, emit); err != nil {
			return fmt.Errorf("sequential: reduce partition %d: %w", p, err)
		}
	}
	return nil
}

// pair is one map output pair, owned.
type pair struct{ key, value []byte }

// mapFile runs one map task over a whole file and returns its output.
func mapFile(ctx context.Context, job *mapreduce.Job, path string, b []byte) ([]pair, error) {
	m, err := job.NewMapper(ctx)
	if err != nil {
		return nil, fmt.Errorf("sequential: map %s: %w", path, err)
	}
	var outp []pair
	emit := func(key, value []byte) error {
		outp = append(outp, pair{bytes.Clone(key), bytes.Clone(value)})
		return nil
	}
	fn := func(off int64, rec []byte) error {
		return m.Map(ctx, mapreduce.Record{Path: path, Offset: off, Data: rec}, emit)
	}
	s := input.Split{Path: path, Length: int64(len(b)), FileSize: int64(len(b))}
	switch job.Input {
	case mapreduce.TextInput:
		_, err = input.Text(ctx, bytes.NewReader(b), s, fn)
	case mapreduce.RecordInput:
		_, err = input.Records(ctx, bytes.NewReader(b), s, int64(len(b))+1, fn)
	default:
		err = fmt.Errorf("unknown input format %v", job.Input)
	}
	if err == nil {
		err = m.Finish(ctx, emit)
	}
	if err != nil {
		return nil, fmt.Errorf("sequential: map %s: %w", path, err)
	}
	return outp, nil
}

// reduceRun sorts kvs by key (stably: values keep their map order) and calls
// fn once per key, returning what fn emitted.
func reduceRun(ctx context.Context, kvs []pair, fn func(key []byte, v mapreduce.Values, emit mapreduce.Emit) error) ([]pair, error) {
	slices.SortStableFunc(kvs, func(a, b pair) int { return bytes.Compare(a.key, b.key) })
	var outp []pair
	emit := func(key, value []byte) error {
		outp = append(outp, pair{bytes.Clone(key), bytes.Clone(value)})
		return nil
	}
	for i := 0; i < len(kvs); {
		j := i + 1
		for j < len(kvs) && bytes.Equal(kvs[j].key, kvs[i].key) {
			j++
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := fn(kvs[i].key, &sliceValues{kvs: kvs[i:j]}, emit); err != nil {
			return nil, err
		}
		i = j
	}
	return outp, nil
}

// sliceValues iterates over the values of a run of pairs with one key.
type sliceValues struct{ kvs []pair }

func (v *sliceValues) Next() ([]byte, bool) {
	if len(v.kvs) == 0 {
		return nil, false
	}
	b := v.kvs[0].value
	v.kvs = v.kvs[1:]
	return b, true
}

// appendOutputLine appends one output file line (Hadoop's TextOutputFormat).
func appendOutputLine(dst, key, value []byte) []byte {
	dst = append(dst, key...)
	if len(value) > 0 {
		dst = append(dst, '\t')
		dst = append(dst, value...)
	}
	return append(dst, '\n')
}

// memInput is an InputReader over files loaded whole.
type memInput struct {
	files []mapreduce.InputFile
	load  func(path string) ([]byte, error)
}

func (m *memInput) Files() []mapreduce.InputFile { return m.files }

func (m *memInput) ReadAt(_ context.Context, path string, p []byte, off int64) (int, error) {
	b, err := m.load(path)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("sequential: negative offset")
	}
	return bytes.NewReader(b).ReadAt(p, off)
}
