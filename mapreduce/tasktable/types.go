package tasktable

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned by the event methods. Each one means the event changed
// nothing.
var (
	// ErrUnknownWorker: the worker is not registered (never was, was declared
	// dead, or registered with a coordinator before a restart). It must
	// register again and drop whatever it was running.
	ErrUnknownWorker = errors.New("tasktable: unknown worker")
	// ErrStaleAttempt: the attempt is not running on that worker any more
	// (killed, lost with its worker, beaten by another attempt, job ended).
	ErrStaleAttempt = errors.New("tasktable: stale attempt")
	// ErrUnknownJob: no such job.
	ErrUnknownJob = errors.New("tasktable: unknown job")
	// ErrBadJob: the job spec is invalid (duplicate id, no reduces, ...).
	ErrBadJob = errors.New("tasktable: bad job")
)

// JobID names a job; unique within one coordinator's journal.
type JobID string

// Kind is the kind of a task.
type Kind uint8

// Task kinds.
const (
	Map    Kind = 1
	Reduce Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Map:
		return "map"
	case Reduce:
		return "reduce"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// TaskID names one task of a job: map task i reads split i, reduce task i
// writes partition i.
type TaskID struct {
	Job   JobID
	Kind  Kind
	Index int
}

func (t TaskID) String() string {
	if t.Kind == Map {
		return fmt.Sprintf("%s/m%05d", t.Job, t.Index)
	}
	return fmt.Sprintf("%s/r%05d", t.Job, t.Index)
}

// AttemptID names one execution of a task. Attempt numbers grow per task;
// together with the worker id (unique per coordinator incarnation) an
// attempt is unique across coordinator restarts.
type AttemptID struct {
	Task    TaskID
	Attempt int
}

func (a AttemptID) String() string { return fmt.Sprintf("%s.%d", a.Task, a.Attempt) }

// WorkerID names a registered worker, "w<incarnation>-<n>": a worker that
// registers again (after its own restart or the coordinator's) gets a new id.
type WorkerID string

// WorkerInfo describes a worker at registration.
type WorkerInfo struct {
	// Slots is how many attempts it runs at once (>= 1).
	Slots int
	// Chunkserver is the data address of the chunkserver beside it, empty
	// when none; a split with a replica there is data-local to it.
	Chunkserver string
	// Rack of the worker ("" unknown).
	Rack string
}

// Split is one map task's input: a byte range of one file, normally one
// chunk, with where its replicas live.
type Split struct {
	Path     string
	Offset   int64
	Length   int64
	Replicas []string // chunkserver data addresses holding the chunk
	Racks    []string // their racks when known (any order, "" unknown)
}

func (s Split) String() string {
	return fmt.Sprintf("%s bytes %d-%d", s.Path, s.Offset, s.Offset+s.Length)
}

// JobSpec is what the table needs of a job: its splits and partition count.
// What the tasks run (app, arguments) is the caller's business.
type JobSpec struct {
	ID      JobID
	Splits  []Split
	Reduces int
}

// Locality says how close a map attempt ran to its input.
type Locality uint8

// Localities, best first.
const (
	DataLocal Locality = iota + 1
	RackLocal
	Remote
)

// Assignment tells a worker to start an attempt.
type Assignment struct {
	Attempt  AttemptID
	Worker   WorkerID
	Split    Split // map attempts
	Reduces  int   // map attempts: number of partitions
	Maps     int   // reduce attempts: number of map outputs to fetch
	Locality Locality
	Backup   bool // a second copy of a straggler [3.6]
}

// Kill tells a worker to stop an attempt and drop its output.
type Kill struct {
	Attempt AttemptID
	Worker  WorkerID
}

// Commit tells the caller to rename a reduce attempt's temporary output to
// the partition's final name and report the outcome with CommitResult. Only
// one Commit per reduce task is outstanding at a time.
type Commit struct {
	Attempt AttemptID
	Worker  WorkerID
	Temp    string
}

// Discard tells the caller to delete a reduce attempt's temporary output that
// will never be committed.
type Discard struct {
	Attempt AttemptID
	Temp    string
}

// JobState is where a job is.
type JobState uint8

// Job states.
const (
	Running JobState = iota + 1
	Succeeded
	Failed
)

func (s JobState) String() string {
	switch s {
	case Running:
		return "running"
	case Succeeded:
		return "succeeded"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// JobResult says a job ended.
type JobResult struct {
	Job      JobID
	State    JobState
	Err      error // Failed: names the task and its input
	Counters Counters
}

// Decisions are what an event asks the caller to do, in order.
type Decisions struct {
	Run      []Assignment
	Kill     []Kill
	Commits  []Commit
	Discards []Discard
	Lost     []WorkerID // declared dead
	Finished []JobResult
}

func (d *Decisions) merge(o Decisions) {
	d.Run = append(d.Run, o.Run...)
	d.Kill = append(d.Kill, o.Kill...)
	d.Commits = append(d.Commits, o.Commits...)
	d.Discards = append(d.Discards, o.Discards...)
	d.Lost = append(d.Lost, o.Lost...)
	d.Finished = append(d.Finished, o.Finished...)
}

// Counters are a job's figures (the paper's counters, Hadoop's names).
// Task-level figures count the attempt whose output was used, once per task.
type Counters struct {
	MapTasks             int64 `json:"map_tasks"`
	ReduceTasks          int64 `json:"reduce_tasks"`
	DataLocalMaps        int64 `json:"data_local_maps"`
	RackLocalMaps        int64 `json:"rack_local_maps"`
	RemoteMaps           int64 `json:"remote_maps"`
	ReexecutedTasks      int64 `json:"reexecuted_tasks"`
	BackupTasks          int64 `json:"backup_tasks"`
	FailedAttempts       int64 `json:"failed_attempts"`
	InputRecords         int64 `json:"input_records"`
	InputBytes           int64 `json:"input_bytes"`
	MapOutputRecords     int64 `json:"map_output_records"`
	MapOutputBytes       int64 `json:"map_output_bytes"`
	CombineInputRecords  int64 `json:"combine_input_records"`
	CombineOutputRecords int64 `json:"combine_output_records"`
	SpilledRecords       int64 `json:"spilled_records"`
	ShuffleBytes         int64 `json:"shuffle_bytes"`
	ReduceInputGroups    int64 `json:"reduce_input_groups"`
	ReduceInputRecords   int64 `json:"reduce_input_records"`
	OutputRecords        int64 `json:"output_records"`
	OutputBytes          int64 `json:"output_bytes"`
}

// Add adds every field of o to c.
func (c *Counters) Add(o Counters) {
	c.MapTasks += o.MapTasks
	c.ReduceTasks += o.ReduceTasks
	c.DataLocalMaps += o.DataLocalMaps
	c.RackLocalMaps += o.RackLocalMaps
	c.RemoteMaps += o.RemoteMaps
	c.ReexecutedTasks += o.ReexecutedTasks
	c.BackupTasks += o.BackupTasks
	c.FailedAttempts += o.FailedAttempts
	c.InputRecords += o.InputRecords
	c.InputBytes += o.InputBytes
	c.MapOutputRecords += o.MapOutputRecords
	c.MapOutputBytes += o.MapOutputBytes
	c.CombineInputRecords += o.CombineInputRecords
	c.CombineOutputRecords += o.CombineOutputRecords
	c.SpilledRecords += o.SpilledRecords
	c.ShuffleBytes += o.ShuffleBytes
	c.ReduceInputGroups += o.ReduceInputGroups
	c.ReduceInputRecords += o.ReduceInputRecords
	c.OutputRecords += o.OutputRecords
	c.OutputBytes += o.OutputBytes
}

// JobStatus is a job's progress.
type JobStatus struct {
	ID          JobID
	State       JobState
	Maps        int
	MapsDone    int
	Reduces     int
	ReducesDone int
	Submitted   time.Time
	Ended       time.Time
	Err         error
	Counters    Counters
}

// MapOutput says where a completed map task's output lives.
type MapOutput struct {
	Index   int
	Attempt AttemptID
	Worker  WorkerID
}
