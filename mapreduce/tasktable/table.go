package tasktable

import (
	"fmt"
	"slices"
	"time"
)

// Options configure a Table. Zero values mean the defaults given.
type Options struct {
	// Incarnation distinguishes coordinator lifetimes; worker ids carry it so
	// that a worker registered before a restart is never confused with one
	// registered after. The caller journals it.
	Incarnation uint64
	// MaxAttempts is how many failed attempts of one task fail the job (4,
	// Hadoop's default).
	MaxAttempts int
	// WorkerTimeout: a worker not heard from for this long is dead (10 s).
	WorkerTimeout time.Duration
	// BackupMin: no attempt younger than this gets a backup copy (5 s).
	BackupMin time.Duration
	// BackupFactor: an attempt gets a backup when it has run this many times
	// the mean duration of its job's completed tasks of the same kind (2).
	BackupFactor float64
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	if o.WorkerTimeout <= 0 {
		o.WorkerTimeout = 10 * time.Second
	}
	if o.BackupMin <= 0 {
		o.BackupMin = 5 * time.Second
	}
	if o.BackupFactor <= 0 {
		o.BackupFactor = 2
	}
	return o
}

type taskState uint8

const (
	idle taskState = iota
	inProgress
	completed // map: output usable; reduce: committed
)

type attempt struct {
	id       AttemptID
	worker   WorkerID
	start    time.Time
	backup   bool
	locality Locality // maps
}

type task struct {
	id          TaskID
	split       Split // maps
	state       taskState
	running     map[int]*attempt // attempt number -> running attempt
	nextAttempt int
	failures    int
	lastErr     string
	backedUp    bool     // a backup copy was started for the current execution
	done        *attempt // map: the attempt whose output is used
	committing  *attempt // reduce: Commit outstanding
	temps       map[int]string
	locality    Locality
	counters    Counters // of the attempt whose output was used
	everDone    bool     // completed once before: running again is a re-execution
}

type job struct {
	spec        JobSpec
	maps        []*task
	reduces     []*task
	mapsDone    int
	reducesDone int
	state       JobState
	err         error
	submitted   time.Time
	ended       time.Time
	reexecuted  int64
	backups     int64
	failed      int64
	mapTime     time.Duration // sum of completed map durations
	mapCount    int
	reduceTime  time.Duration
	reduceCount int
}

type worker struct {
	id       WorkerID
	info     WorkerInfo
	lastSeen time.Time
	running  map[AttemptID]*attempt
	maps     map[TaskID]struct{} // completed map tasks whose output lives here
}

// Table is the coordinator's task table. It is not safe for concurrent use:
// the caller serialises events (one mutex around every call).
type Table struct {
	opts       Options
	jobs       map[JobID]*job
	order      []JobID // submission order: FIFO scheduling
	workers    map[WorkerID]*worker
	nextWorker int
}

// New returns an empty table.
func New(opts Options) *Table {
	return &Table{
		opts:    opts.withDefaults(),
		jobs:    make(map[JobID]*job),
		workers: make(map[WorkerID]*worker),
	}
}

// Submit adds a job: one map task per split, spec.Reduces reduce tasks.
func (t *Table) Submit(now time.Time, spec JobSpec) error {
	if spec.ID == "" {
		return fmt.Errorf("%w: empty job id", ErrBadJob)
	}
	if _, ok := t.jobs[spec.ID]; ok {
		return fmt.Errorf("%w: job %s exists", ErrBadJob, spec.ID)
	}
	if spec.Reduces < 1 {
		return fmt.Errorf("%w: job %s: %d reduce tasks, want >= 1", ErrBadJob, spec.ID, spec.Reduces)
	}
	j := &job{spec: spec, state: Running, submitted: now}
	for i, s := range spec.Splits {
		j.maps = append(j.maps, &task{id: TaskID{spec.ID, Map, i}, split: s, running: map[int]*attempt{}})
	}
	for i := range spec.Reduces {
		j.reduces = append(j.reduces, &task{id: TaskID{spec.ID, Reduce, i}, running: map[int]*attempt{}, temps: map[int]string{}})
	}
	t.jobs[spec.ID] = j
	t.order = append(t.order, spec.ID)
	return nil
}

// Restore marks a reduce task committed without running it: the journal
// says so (a coordinator restarting). The job succeeds when it was the last.
func (t *Table) Restore(now time.Time, id JobID, partition int, c Counters) (Decisions, error) {
	j, ok := t.jobs[id]
	if !ok {
		return Decisions{}, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	if partition < 0 || partition >= len(j.reduces) {
		return Decisions{}, fmt.Errorf("%w: job %s has no partition %d", ErrBadJob, id, partition)
	}
	r := j.reduces[partition]
	if r.state == completed || j.state != Running {
		return Decisions{}, nil
	}
	var d Decisions
	t.markReduceCommitted(now, j, r, c, &d)
	return d, nil
}

// Register adds a worker and returns its id.
func (t *Table) Register(now time.Time, info WorkerInfo) WorkerID {
	if info.Slots < 1 {
		info.Slots = 1
	}
	t.nextWorker++
	id := WorkerID(fmt.Sprintf("w%d-%d", t.opts.Incarnation, t.nextWorker))
	t.workers[id] = &worker{id: id, info: info, lastSeen: now,
		running: map[AttemptID]*attempt{}, maps: map[TaskID]struct{}{}}
	return id
}

// Heartbeat records that worker w is alive and running the attempts listed
// (started and not yet reported). Attempts it runs that the table does not
// expect there are killed; attempts the table expected that it no longer
// lists are lost (their assignment never arrived, or the worker dropped
// them). Free slots are then filled.
func (t *Table) Heartbeat(now time.Time, id WorkerID, running []AttemptID) (Decisions, error) {
	w, ok := t.workers[id]
	if !ok {
		return Decisions{}, fmt.Errorf("%w: %s", ErrUnknownWorker, id)
	}
	w.lastSeen = now
	var d Decisions
	listed := make(map[AttemptID]bool, len(running))
	for _, a := range running {
		listed[a] = true
		if _, ok := w.running[a]; !ok && !t.inUse(a, id) {
			d.Kill = append(d.Kill, Kill{Attempt: a, Worker: id})
		}
	}
	for aid, a := range w.running {
		if !listed[aid] {
			t.dropAttempt(a, &d)
		}
	}
	if len(w.running) >= w.info.Slots {
		t.preemptReduce(w, &d)
	}
	for len(w.running) < w.info.Slots {
		a, ok := t.pick(now, w)
		if !ok {
			break
		}
		d.Run = append(d.Run, a)
	}
	return d, nil
}

// preemptReduce frees a slot of w for a map task that must run again (its
// output was lost) when w's slots are all taken by reduce attempts of the
// same job, which wait for that very output and would otherwise hold the
// slots forever (Hadoop preempts reducers the same way). A free slot on
// another worker does not count: that worker may be the stalled one whose
// output was lost. The reduce attempt is killed without counting a failure
// and runs again once the map output exists; what it fetched is lost.
func (t *Table) preemptReduce(w *worker, d *Decisions) {
	for _, id := range t.order {
		j := t.jobs[id]
		if j.state != Running || j.mapsDone == len(j.maps) || !slices.ContainsFunc(j.maps, func(tk *task) bool { return tk.state == idle }) {
			continue
		}
		for _, a := range sortedAttempts(w.running) {
			if a.id.Task.Job == id && a.id.Task.Kind == Reduce {
				t.dropAttempt(a, d)
				d.Kill = append(d.Kill, Kill{Attempt: a.id, Worker: w.id})
				return
			}
		}
	}
}

// Tick declares dead every worker not heard from for WorkerTimeout: its
// running attempts are lost, and so is the completed map output on its disk
// for jobs still reducing [3.3].
func (t *Table) Tick(now time.Time) Decisions {
	var d Decisions
	for _, id := range t.workerIDs() {
		w := t.workers[id]
		if now.Sub(w.lastSeen) > t.opts.WorkerTimeout {
			t.removeWorker(w, &d)
			d.Lost = append(d.Lost, id)
		}
	}
	return d
}

// Deregister removes a worker at once (it said it is shutting down, or the
// caller learnt it died): as Tick does for a silent worker.
func (t *Table) Deregister(now time.Time, id WorkerID) (Decisions, error) {
	w, ok := t.workers[id]
	if !ok {
		return Decisions{}, fmt.Errorf("%w: %s", ErrUnknownWorker, id)
	}
	var d Decisions
	t.removeWorker(w, &d)
	d.Lost = append(d.Lost, id)
	return d, nil
}

// MapDone records that a map attempt finished: its output (R partitions) is
// on worker w's disk. Other attempts of the task are killed.
func (t *Table) MapDone(now time.Time, id AttemptID, w WorkerID, c Counters) (Decisions, error) {
	j, tk, a, err := t.runningAttempt(id, w, Map)
	if err != nil {
		return Decisions{}, err
	}
	var d Decisions
	t.endAttempt(tk, a)
	t.killOthers(tk, &d)
	tk.state = completed
	tk.done = a
	tk.locality = a.locality
	tk.counters = c
	tk.everDone = true
	t.workers[w].maps[tk.id] = struct{}{}
	j.mapsDone++
	j.mapTime += now.Sub(a.start)
	j.mapCount++
	return d, nil
}

// ReduceDone records that a reduce attempt wrote its partition to temp. The
// first such attempt gets a Commit; later ones (or any while a Commit is
// outstanding or after the partition committed) get a Discard of their temp.
func (t *Table) ReduceDone(now time.Time, id AttemptID, w WorkerID, temp string, c Counters) (Decisions, error) {
	j, tk, a, err := t.runningAttempt(id, w, Reduce)
	if err != nil {
		return Decisions{}, err
	}
	var d Decisions
	t.endAttempt(tk, a)
	if tk.committing != nil || tk.state == completed {
		d.Discards = append(d.Discards, Discard{Attempt: id, Temp: temp})
		t.requeueIfIdle(tk)
		return d, nil
	}
	tk.committing = a
	tk.temps[id.Attempt] = temp
	tk.counters = c
	j.reduceTime += now.Sub(a.start)
	j.reduceCount++
	d.Commits = append(d.Commits, Commit{Attempt: id, Worker: w, Temp: temp})
	return d, nil
}

// CommitResult reports the outcome of a Commit. On success the partition is
// committed (other attempts killed) and the job succeeds with its last
// partition; on failure the attempt counts as failed.
func (t *Table) CommitResult(now time.Time, id AttemptID, cerr error) (Decisions, error) {
	j, ok := t.jobs[id.Task.Job]
	if !ok || id.Task.Kind != Reduce || id.Task.Index < 0 || id.Task.Index >= len(j.reduces) {
		return Decisions{}, fmt.Errorf("%w: %s", ErrStaleAttempt, id)
	}
	tk := j.reduces[id.Task.Index]
	if tk.committing == nil || tk.committing.id != id {
		return Decisions{}, fmt.Errorf("%w: %s has no commit outstanding", ErrStaleAttempt, id)
	}
	var d Decisions
	temp := tk.temps[id.Attempt]
	delete(tk.temps, id.Attempt)
	tk.committing = nil
	if cerr != nil {
		d.Discards = append(d.Discards, Discard{Attempt: id, Temp: temp})
	}
	if j.state != Running {
		return d, nil
	}
	if cerr != nil {
		t.failTask(now, j, tk, fmt.Sprintf("commit: %v", cerr), &d)
		return d, nil
	}
	t.markReduceCommitted(now, j, tk, tk.counters, &d)
	return d, nil
}

// TaskFailed records that an attempt failed (the user's function returned an
// error or crashed, its input could not be read, ...). MaxAttempts failures
// of one task fail the job.
func (t *Table) TaskFailed(now time.Time, id AttemptID, w WorkerID, reason string) (Decisions, error) {
	j, tk, a, err := t.runningAttempt(id, w, id.Task.Kind)
	if err != nil {
		return Decisions{}, err
	}
	var d Decisions
	t.endAttempt(tk, a)
	t.failTask(now, j, tk, reason, &d)
	return d, nil
}

// FetchFailed records that reduce attempt r (running on w) could not fetch
// map task mapIndex's output from the attempt that produced it: that output
// is lost and the map task runs again (Hadoop's fetch-failure rule).
func (t *Table) FetchFailed(now time.Time, r AttemptID, w WorkerID, mapAttempt AttemptID) (Decisions, error) {
	j, _, _, err := t.runningAttempt(r, w, Reduce)
	if err != nil {
		return Decisions{}, err
	}
	var d Decisions
	m := mapAttempt.Task
	if m.Job != r.Task.Job || m.Kind != Map || m.Index < 0 || m.Index >= len(j.maps) {
		return d, fmt.Errorf("%w: fetch failure names %s", ErrStaleAttempt, mapAttempt)
	}
	tk := j.maps[m.Index]
	if tk.state != completed || tk.done == nil || tk.done.id != mapAttempt {
		return d, nil // already re-executed
	}
	t.loseMapOutput(j, tk)
	return d, nil
}

// MapOutputs lists where the completed map outputs of a job live, by map
// index; a reducer fetches each and asks again for the ones missing.
func (t *Table) MapOutputs(id JobID) ([]MapOutput, error) {
	j, ok := t.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	var out []MapOutput
	for _, m := range j.maps {
		if m.state == completed && m.done != nil {
			out = append(out, MapOutput{Index: m.id.Index, Attempt: m.done.id, Worker: m.done.worker})
		}
	}
	return out, nil
}

// Status returns a job's progress.
func (t *Table) Status(id JobID) (JobStatus, error) {
	j, ok := t.jobs[id]
	if !ok {
		return JobStatus{}, fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	return JobStatus{ID: id, State: j.state, Maps: len(j.maps), MapsDone: j.mapsDone,
		Reduces: len(j.reduces), ReducesDone: j.reducesDone, Submitted: j.submitted,
		Ended: j.ended, Err: j.err, Counters: t.counters(j)}, nil
}

// Jobs lists every job's progress in submission order.
func (t *Table) Jobs() []JobStatus {
	out := make([]JobStatus, 0, len(t.order))
	for _, id := range t.order {
		s, _ := t.Status(id)
		out = append(out, s)
	}
	return out
}

// Forget removes an ended job (its results were read and journalled).
func (t *Table) Forget(id JobID) error {
	j, ok := t.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownJob, id)
	}
	if j.state == Running {
		return fmt.Errorf("%w: job %s is running", ErrBadJob, id)
	}
	delete(t.jobs, id)
	t.order = slices.DeleteFunc(t.order, func(x JobID) bool { return x == id })
	return nil
}

// inUse says whether an attempt that worker w still lists, and the table no
// longer counts as running, has output the job still needs: a completed map
// attempt whose output reducers fetch, or a reduce attempt being committed.
// Such an attempt is not killed (its report and the heartbeat crossed).
func (t *Table) inUse(id AttemptID, w WorkerID) bool {
	j, ok := t.jobs[id.Task.Job]
	if !ok || j.state != Running {
		return false
	}
	switch id.Task.Kind {
	case Map:
		if id.Task.Index >= 0 && id.Task.Index < len(j.maps) {
			d := j.maps[id.Task.Index].done
			return d != nil && d.id == id && d.worker == w
		}
	case Reduce:
		if id.Task.Index >= 0 && id.Task.Index < len(j.reduces) {
			c := j.reduces[id.Task.Index].committing
			return c != nil && c.id == id && c.worker == w
		}
	}
	return false
}

// Workers lists the registered workers, sorted.
func (t *Table) Workers() []WorkerID { return t.workerIDs() }

// Running lists the attempts the table believes run on w.
func (t *Table) Running(id WorkerID) []AttemptID {
	w, ok := t.workers[id]
	if !ok {
		return nil
	}
	out := make([]AttemptID, 0, len(w.running))
	for a := range w.running {
		out = append(out, a)
	}
	return out
}

func (t *Table) workerIDs() []WorkerID {
	ids := make([]WorkerID, 0, len(t.workers))
	for id := range t.workers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (t *Table) counters(j *job) Counters {
	var c Counters
	c.MapTasks = int64(len(j.maps))
	c.ReduceTasks = int64(len(j.reduces))
	for _, m := range j.maps {
		if m.state != completed && !m.everDone {
			continue
		}
		c.Add(m.counters)
		switch m.locality {
		case DataLocal:
			c.DataLocalMaps++
		case RackLocal:
			c.RackLocalMaps++
		case Remote:
			c.RemoteMaps++
		}
	}
	for _, r := range j.reduces {
		if r.state == completed {
			c.Add(r.counters)
		}
	}
	c.ReexecutedTasks = j.reexecuted
	c.BackupTasks = j.backups
	c.FailedAttempts = j.failed
	return c
}
