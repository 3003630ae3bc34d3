package tasktable

import (
	"fmt"
	"slices"
	"time"
)

// pick chooses the next attempt for a free slot on w: jobs in submission
// order; within a job an idle map task (data-local, then rack-local, then
// any [3.4]), once every map completed an idle reduce task, and when a phase
// has nothing idle left a backup copy of its slowest straggler [3.6].
func (t *Table) pick(now time.Time, w *worker) (Assignment, bool) {
	for _, id := range t.order {
		j := t.jobs[id]
		if j.state != Running {
			continue
		}
		if j.mapsDone < len(j.maps) {
			if tk, loc := pickMap(j, w); tk != nil {
				return t.start(now, j, tk, w, loc, false), true
			}
			if tk := t.straggler(now, j, j.maps, w); tk != nil {
				return t.start(now, j, tk, w, locality(tk.split, w), true), true
			}
			continue
		}
		for _, tk := range j.reduces {
			if tk.state == idle {
				return t.start(now, j, tk, w, 0, false), true
			}
		}
		if tk := t.straggler(now, j, j.reduces, w); tk != nil {
			return t.start(now, j, tk, w, 0, true), true
		}
	}
	return Assignment{}, false
}

func pickMap(j *job, w *worker) (*task, Locality) {
	var best *task
	bestLoc := Locality(0)
	for _, tk := range j.maps {
		if tk.state != idle {
			continue
		}
		loc := locality(tk.split, w)
		if best == nil || loc < bestLoc {
			best, bestLoc = tk, loc
			if loc == DataLocal {
				break
			}
		}
	}
	return best, bestLoc
}

func locality(s Split, w *worker) Locality {
	if w.info.Chunkserver != "" && slices.Contains(s.Replicas, w.info.Chunkserver) {
		return DataLocal
	}
	if w.info.Rack != "" && slices.Contains(s.Racks, w.info.Rack) {
		return RackLocal
	}
	return Remote
}

// straggler returns the in-progress task of a phase with nothing idle whose
// only attempt has run longest beyond the backup threshold, not on w.
func (t *Table) straggler(now time.Time, j *job, tasks []*task, w *worker) *task {
	if len(tasks) == 0 {
		return nil
	}
	var sum time.Duration
	var n int
	if tasks[0].id.Kind == Map {
		sum, n = j.mapTime, j.mapCount
	} else {
		sum, n = j.reduceTime, j.reduceCount
	}
	threshold := time.Duration(float64(t.opts.BackupMin) * t.opts.BackupFactor)
	if n > 0 {
		threshold = max(t.opts.BackupMin, time.Duration(float64(sum/time.Duration(n))*t.opts.BackupFactor))
	}
	var best *task
	var bestAge time.Duration
	for _, tk := range tasks {
		if tk.state == idle {
			return nil // not near the end of the phase
		}
		if tk.state != inProgress || tk.backedUp || len(tk.running) != 1 || tk.committing != nil {
			continue
		}
		for _, a := range tk.running {
			age := now.Sub(a.start)
			if a.worker != w.id && age > threshold && age > bestAge {
				best, bestAge = tk, age
			}
		}
	}
	return best
}

func (t *Table) start(now time.Time, j *job, tk *task, w *worker, loc Locality, backup bool) Assignment {
	tk.nextAttempt++
	a := &attempt{id: AttemptID{Task: tk.id, Attempt: tk.nextAttempt}, worker: w.id, start: now,
		backup: backup, locality: loc}
	tk.running[a.id.Attempt] = a
	tk.state = inProgress
	w.running[a.id] = a
	if backup {
		tk.backedUp = true
		j.backups++
	}
	as := Assignment{Attempt: a.id, Worker: w.id, Locality: loc, Backup: backup}
	if tk.id.Kind == Map {
		as.Split = tk.split
		as.Reduces = len(j.reduces)
	} else {
		as.Maps = len(j.maps)
	}
	return as
}

// runningAttempt finds attempt id running on worker w, of a running job.
func (t *Table) runningAttempt(id AttemptID, w WorkerID, kind Kind) (*job, *task, *attempt, error) {
	stale := func(why string) error { return fmt.Errorf("%w: %s on %s: %s", ErrStaleAttempt, id, w, why) }
	if _, ok := t.workers[w]; !ok {
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrUnknownWorker, w)
	}
	j, ok := t.jobs[id.Task.Job]
	if !ok {
		return nil, nil, nil, stale("no such job")
	}
	if j.state != Running {
		return nil, nil, nil, stale("job ended")
	}
	if id.Task.Kind != kind {
		return nil, nil, nil, stale("wrong kind of task")
	}
	tasks := j.maps
	if kind == Reduce {
		tasks = j.reduces
	}
	if id.Task.Index < 0 || id.Task.Index >= len(tasks) {
		return nil, nil, nil, stale("no such task")
	}
	tk := tasks[id.Task.Index]
	a, ok := tk.running[id.Attempt]
	if !ok || a.worker != w {
		return nil, nil, nil, stale("not running")
	}
	return j, tk, a, nil
}

// endAttempt removes a from the running sets (it finished, failed or was lost).
func (t *Table) endAttempt(tk *task, a *attempt) {
	delete(tk.running, a.id.Attempt)
	if w, ok := t.workers[a.worker]; ok {
		delete(w.running, a.id)
	}
}

// requeueIfIdle makes a task idle again when nothing runs or commits it.
func (t *Table) requeueIfIdle(tk *task) {
	if tk.state == inProgress && len(tk.running) == 0 && tk.committing == nil {
		tk.state = idle
		tk.backedUp = false
	}
}

func (t *Table) killOthers(tk *task, d *Decisions) {
	for _, n := range sortedKeys(tk.running) {
		a := tk.running[n]
		t.endAttempt(tk, a)
		d.Kill = append(d.Kill, Kill{Attempt: a.id, Worker: a.worker})
	}
}

// dropAttempt loses a running attempt without counting a failure.
func (t *Table) dropAttempt(a *attempt, d *Decisions) {
	j := t.jobs[a.id.Task.Job]
	tasks := j.maps
	if a.id.Task.Kind == Reduce {
		tasks = j.reduces
	}
	tk := tasks[a.id.Task.Index]
	t.endAttempt(tk, a)
	t.requeueIfIdle(tk)
}

func (t *Table) removeWorker(w *worker, d *Decisions) {
	for _, a := range sortedAttempts(w.running) {
		t.dropAttempt(a, d)
	}
	for _, tid := range sortedTasks(w.maps) {
		j := t.jobs[tid.Job]
		if j == nil || j.state != Running || j.reducesDone == len(j.reduces) {
			continue
		}
		tk := j.maps[tid.Index]
		if tk.state == completed && tk.done != nil && tk.done.worker == w.id {
			t.loseMapOutput(j, tk)
		}
	}
	delete(t.workers, w.id)
}

// loseMapOutput makes a completed map task idle again: its output is gone.
func (t *Table) loseMapOutput(j *job, tk *task) {
	if w, ok := t.workers[tk.done.worker]; ok {
		delete(w.maps, tk.id)
	}
	tk.done = nil
	tk.state = idle
	tk.backedUp = false
	j.mapsDone--
	j.reexecuted++
	if len(tk.running) > 0 { // cannot happen: attempts were killed at completion
		tk.state = inProgress
	}
}

func (t *Table) failTask(now time.Time, j *job, tk *task, reason string, d *Decisions) {
	tk.failures++
	tk.lastErr = reason
	j.failed++
	if tk.failures >= t.opts.MaxAttempts {
		what := fmt.Sprintf("partition %d", tk.id.Index)
		if tk.id.Kind == Map {
			what = "input " + tk.split.String()
		}
		t.endJob(now, j, Failed, fmt.Errorf("%s task %s (%s) failed %d times, last: %s",
			tk.id.Kind, tk.id, what, tk.failures, reason), d)
		return
	}
	t.requeueIfIdle(tk)
}

func (t *Table) markReduceCommitted(now time.Time, j *job, tk *task, c Counters, d *Decisions) {
	tk.state = completed
	tk.counters = c
	t.killOthers(tk, d)
	for _, n := range sortedKeys(tk.temps) {
		d.Discards = append(d.Discards, Discard{Attempt: AttemptID{tk.id, n}, Temp: tk.temps[n]})
	}
	clear(tk.temps)
	j.reducesDone++
	if j.reducesDone == len(j.reduces) {
		t.endJob(now, j, Succeeded, nil, d)
	}
}

// endJob kills whatever of the job still runs and reports its result. Map
// output on the workers is the caller's to clean up (every worker drops a
// finished job's scratch directory).
func (t *Table) endJob(now time.Time, j *job, state JobState, err error, d *Decisions) {
	for _, tasks := range [][]*task{j.maps, j.reduces} {
		for _, tk := range tasks {
			t.killOthers(tk, d)
			if tk.id.Kind == Map && tk.done != nil {
				if w, ok := t.workers[tk.done.worker]; ok {
					delete(w.maps, tk.id)
				}
			}
		}
	}
	j.state = state
	j.err = err
	j.ended = now
	if err != nil {
		j.err = fmt.Errorf("job %s: %w", j.spec.ID, err)
	}
	d.Finished = append(d.Finished, JobResult{Job: j.spec.ID, State: state, Err: j.err, Counters: t.counters(j)})
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func sortedAttempts(m map[AttemptID]*attempt) []*attempt {
	out := make([]*attempt, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *attempt) int { return compareAttempt(a.id, b.id) })
	return out
}

func sortedTasks(m map[TaskID]struct{}) []TaskID {
	out := make([]TaskID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, compareTask)
	return out
}

func compareTask(a, b TaskID) int {
	if a.Job != b.Job {
		if a.Job < b.Job {
			return -1
		}
		return 1
	}
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return a.Index - b.Index
}

func compareAttempt(a, b AttemptID) int {
	if c := compareTask(a.Task, b.Task); c != 0 {
		return c
	}
	return a.Attempt - b.Attempt
}
