package mapreduce

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
)

// Record is one input record handed to a Map function.
type Record struct {
	// Path is the input file the record came from.
	Path string
	// Offset is the record's byte offset in Path (a text line's first byte,
	// a framed record's header).
	Offset int64
	// Data is the record without its framing (a text line without its
	// trailing "\n" or "\r\n"). It aliases a reader buffer and is valid only
	// during the call: copy it to keep it.
	Data []byte
}

// Emit receives one output pair of a Map, Combine or Reduce function. Key
// and value are copied before Emit returns, so the caller may reuse them.
// An error (the worker's disk is full, the output file failed) means the
// task is failing: return it.
type Emit func(key, value []byte) error

// Values iterates over the values grouped under one key, in no particular
// order. The slice Next returns is valid until the following call.
type Values interface {
	Next() (value []byte, ok bool)
}

// MapFunc is the user's map function (paper section 2.1): called once per
// input record, in input order within a split.
type MapFunc func(ctx context.Context, rec Record, emit Emit) error

// ReduceFunc is the user's reduce (or combine) function: called once per
// distinct key of a partition, keys in increasing byte order.
type ReduceFunc func(ctx context.Context, key []byte, values Values, emit Emit) error

// PartitionFunc returns the partition, in [0, reduces), of a map output key.
type PartitionFunc func(key []byte, reduces int) int

// InputFormat says how a split's bytes become records.
type InputFormat uint8

// Input formats.
const (
	// TextInput: one record per line ("\n"-terminated, a trailing "\r" is
	// dropped). A line crossing a split boundary belongs to the split it
	// starts in (Hadoop's LineRecordReader rule).
	TextInput InputFormat = iota
	// RecordInput: the client's record-append framing (client.EncodeRecord):
	// padding, torn fragments and retry duplicates are skipped.
	RecordInput
)

func (f InputFormat) String() string {
	switch f {
	case TextInput:
		return "text"
	case RecordInput:
		return "records"
	}
	return fmt.Sprintf("inputformat(%d)", uint8(f))
}

// ParseInputFormat parses "text" or "records".
func ParseInputFormat(s string) (InputFormat, error) {
	switch s {
	case "", "text":
		return TextInput, nil
	case "records":
		return RecordInput, nil
	}
	return 0, fmt.Errorf("unknown input format %q (want text or records)", s)
}

// Job is what a MapReduce job runs. Map and Reduce are required; the rest
// is optional. The same Job value is built on every worker from the job's
// Config (see App), so its functions must not depend on state outside it.
//
// Output files hold one line per reduce output pair, "key\tvalue\n", or
// "key\n" when the value is empty (Hadoop's TextOutputFormat).
type Job struct {
	Input     InputFormat
	Map       MapFunc       // or NewMapTask
	Combine   ReduceFunc    // nil: no combiner
	Reduce    ReduceFunc    // or NewReduceTask
	Partition PartitionFunc // nil: HashPartition
	// NewMapTask and NewReduceTask, when set, replace Map and Reduce with
	// per-task state (streaming jobs).
	NewMapTask    func(ctx context.Context) (Mapper, error)
	NewReduceTask func(ctx context.Context) (Reducer, error)
	// Prepare, when set, runs on the submitter before the job starts.
	Prepare PrepareFunc
}

// Check reports what is missing in j.
func (j *Job) Check() error {
	if j == nil {
		return errors.New("mapreduce: nil job")
	}
	if j.Map == nil && j.NewMapTask == nil {
		return errors.New("mapreduce: job has no Map function")
	}
	if j.Reduce == nil && j.NewReduceTask == nil {
		return errors.New("mapreduce: job has no Reduce function")
	}
	return nil
}

// PartitionOf returns the partition of key under j's partitioner, checking
// the user's partitioner stays in range.
func (j *Job) PartitionOf(key []byte, reduces int) (int, error) {
	if j.Partition == nil {
		return HashPartition(key, reduces), nil
	}
	p := j.Partition(key, reduces)
	if p < 0 || p >= reduces {
		return 0, fmt.Errorf("mapreduce: partitioner returned %d for %d reduces", p, reduces)
	}
	return p, nil
}

// HashPartition is the default partitioner: FNV-1a of the key modulo
// reduces (the paper's hash(key) mod R).
func HashPartition(key []byte, reduces int) int {
	if reduces <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write(key)
	return int(h.Sum64() % uint64(reduces))
}

// Config is a job's string arguments (app name, -pattern, streaming
// commands, ...), shipped to every worker; an App builds the Job from it.
type Config map[string]string

// App builds a Job from its Config. It runs on the submitter (to check the
// arguments before anything starts) and on every worker.
type App func(conf Config) (*Job, error)

// Apps maps app names to their builders.
type Apps map[string]App

// Build returns the job of app name.
func (a Apps) Build(name string, conf Config) (*Job, error) {
	app, ok := a[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %s)", ErrUnknownApp, name, strings.Join(a.Names(), ", "))
	}
	j, err := app(conf)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	if err := j.Check(); err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	return j, nil
}

// Names returns the app names, sorted.
func (a Apps) Names() []string {
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownApp is a job naming an app the registry does not have.
var ErrUnknownApp = errors.New("mapreduce: unknown app")

// Mapper is a map function with per-task state, for jobs that need set-up
// and tear-down around a task's records (a streaming job's child process).
// Finish runs after the task's last record; what it emits is map output too.
type Mapper interface {
	Map(ctx context.Context, rec Record, emit Emit) error
	Finish(ctx context.Context, emit Emit) error
}

// Reducer is a reduce function with per-task state (see Mapper).
type Reducer interface {
	Reduce(ctx context.Context, key []byte, values Values, emit Emit) error
	Finish(ctx context.Context, emit Emit) error
}

// InputFile is one file of a job's input.
type InputFile struct {
	Path string
	Size int64
}

// InputReader gives a job's Prepare function read access to its input.
type InputReader interface {
	Files() []InputFile
	ReadAt(ctx context.Context, path string, p []byte, off int64) (int, error)
}

// PrepareFunc runs once on the submitter before the job starts, with the
// job's input; it may add entries to conf, which every worker then sees
// (the sort app samples keys and stores its partition boundaries).
type PrepareFunc func(ctx context.Context, in InputReader, reduces int, conf Config) error

// mapFuncs adapts a MapFunc to a Mapper.
type mapFuncs struct{ f MapFunc }

func (m mapFuncs) Map(ctx context.Context, rec Record, emit Emit) error { return m.f(ctx, rec, emit) }
func (mapFuncs) Finish(context.Context, Emit) error                     { return nil }

type reduceFuncs struct{ f ReduceFunc }

func (r reduceFuncs) Reduce(ctx context.Context, key []byte, values Values, emit Emit) error {
	return r.f(ctx, key, values, emit)
}
func (reduceFuncs) Finish(context.Context, Emit) error { return nil }

// NewMapper returns the Mapper of one map task: j.NewMapTask's when set,
// else one calling j.Map.
func (j *Job) NewMapper(ctx context.Context) (Mapper, error) {
	if j.NewMapTask != nil {
		return j.NewMapTask(ctx)
	}
	return mapFuncs{j.Map}, nil
}

// NewReducer returns the Reducer of one reduce task (see NewMapper).
func (j *Job) NewReducer(ctx context.Context) (Reducer, error) {
	if j.NewReduceTask != nil {
		return j.NewReduceTask(ctx)
	}
	return reduceFuncs{j.Reduce}, nil
}
