package tasktable

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// simWorker is a worker process as the model sees it: what it runs, what map
// output its disk holds, whether it is alive.
type simWorker struct {
	id      WorkerID
	cs      string
	running map[AttemptID]Assignment
	outputs map[AttemptID]bool // completed map outputs on its disk
	dead    bool               // killed: silent forever, disk gone
	stalled bool               // SIGSTOP: silent until resumed
	lastHB  time.Time
}

type pendingCommit struct {
	c    Commit
	part int
}

// sim drives a Table with random events and checks its decisions.
type sim struct {
	t        *testing.T
	rng      *rand.Rand
	tab      *Table
	now      time.Time
	workers  []*simWorker
	commits  []pendingCommit
	fs       map[string]AttemptID // committed final names -> attempt that wrote it
	jobs     map[JobID]JobSpec
	poison   map[JobID]int // job -> map index that always fails
	finished map[JobID]JobResult
	temps    map[string]bool // temp outputs written and not yet renamed or discarded
	failures map[TaskID]int  // failures injected per task
	chaos    bool
	nextJob  int
	log      []string
}

func (s *sim) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%s ", s.now.Format("15:04:05.000"))+fmt.Sprintf(format, args...))
}

func (s *sim) fatalf(format string, args ...any) {
	s.t.Helper()
	tail := s.log
	if len(tail) > 60 {
		tail = tail[len(tail)-60:]
	}
	s.t.Fatalf("%s\nlast events:\n%s", fmt.Sprintf(format, args...), strings.Join(tail, "\n"))
}

func (s *sim) apply(d Decisions) {
	s.t.Helper()
	for _, a := range d.Run {
		w := s.worker(a.Worker)
		if w == nil || w.dead {
			s.fatalf("assignment %s to a worker not alive: %s", a.Attempt, a.Worker)
		}
		if a.Attempt.Task.Kind == Reduce {
			st, _ := s.tab.Status(a.Attempt.Task.Job)
			if st.MapsDone != st.Maps {
				s.fatalf("reduce %s started with %d of %d maps done", a.Attempt, st.MapsDone, st.Maps)
			}
		}
		// A heartbeat answer may be lost: the worker never starts it.
		if s.rng.IntN(20) == 0 {
			s.logf("assignment %s to %s lost", a.Attempt, a.Worker)
			continue
		}
		w.running[a.Attempt] = a
		s.logf("run %s on %s backup=%v", a.Attempt, a.Worker, a.Backup)
	}
	for _, k := range d.Kill {
		if w := s.worker(k.Worker); w != nil {
			delete(w.running, k.Attempt)
			delete(w.outputs, k.Attempt)
		}
		s.logf("kill %s on %s", k.Attempt, k.Worker)
	}
	for _, c := range d.Commits {
		if !s.temps[c.Temp] {
			s.fatalf("commit of %s names temp %q that was never written", c.Attempt, c.Temp)
		}
		for _, p := range s.commits {
			if p.c.Attempt.Task == c.Attempt.Task {
				s.fatalf("second outstanding commit for %s: %s and %s", c.Attempt.Task, p.c.Attempt, c.Attempt)
			}
		}
		s.commits = append(s.commits, pendingCommit{c: c, part: c.Attempt.Task.Index})
		s.logf("commit %s", c.Attempt)
	}
	for _, x := range d.Discards {
		delete(s.temps, x.Temp)
	}
	for _, id := range d.Lost {
		s.logf("lost %s", id)
	}
	for _, r := range d.Finished {
		if _, ok := s.finished[r.Job]; ok {
			s.fatalf("job %s finished twice", r.Job)
		}
		s.finished[r.Job] = r
		s.logf("finished %s %s %v", r.Job, r.State, r.Err)
		spec := s.jobs[r.Job]
		switch r.State {
		case Succeeded:
			if _, bad := s.poison[r.Job]; bad {
				s.fatalf("job %s with a poison split succeeded", r.Job)
			}
			for tid, n := range s.failures {
				if tid.Job == r.Job && n >= s.tab.opts.MaxAttempts {
					s.fatalf("job %s succeeded although %s failed %d times", r.Job, tid, n)
				}
			}
			for p := range spec.Reduces {
				if _, ok := s.fs[final(r.Job, p)]; !ok {
					s.fatalf("job %s succeeded without partition %d", r.Job, p)
				}
			}
			if r.Counters.InputRecords != int64(len(spec.Splits)) {
				s.fatalf("job %s counts %d input records, want %d (one per map task)", r.Job, r.Counters.InputRecords, len(spec.Splits))
			}
			if r.Counters.OutputRecords != int64(spec.Reduces) {
				s.fatalf("job %s counts %d output records, want %d", r.Job, r.Counters.OutputRecords, spec.Reduces)
			}
			loc := r.Counters.DataLocalMaps + r.Counters.RackLocalMaps + r.Counters.RemoteMaps
			if loc != int64(len(spec.Splits)) {
				s.fatalf("job %s: locality counters sum to %d, want %d", r.Job, loc, len(spec.Splits))
			}
		case Failed:
			var culprit *TaskID
			for tid, n := range s.failures {
				if tid.Job == r.Job && n >= s.tab.opts.MaxAttempts {
					culprit = &tid
				}
			}
			if culprit == nil {
				s.fatalf("job %s failed without a task failing %d times: %v", r.Job, s.tab.opts.MaxAttempts, r.Err)
			}
			want := fmt.Sprintf("partition %d", culprit.Index)
			if culprit.Kind == Map {
				want = spec.Splits[culprit.Index].Path
			}
			if r.Err == nil || !strings.Contains(r.Err.Error(), want) || !strings.Contains(r.Err.Error(), culprit.String()) {
				s.fatalf("job %s failure does not name the task %s and input %q: %v", r.Job, culprit, want, r.Err)
			}
		default:
			s.fatalf("job %s finished in state %s", r.Job, r.State)
		}
	}
}

func final(j JobID, p int) string { return fmt.Sprintf("/%s/part-r-%05d", j, p) }

func (s *sim) worker(id WorkerID) *simWorker {
	for _, w := range s.workers {
		if w.id == id {
			return w
		}
	}
	return nil
}

func (s *sim) live() []*simWorker {
	var out []*simWorker
	for _, w := range s.workers {
		if !w.dead && !w.stalled {
			out = append(out, w)
		}
	}
	return out
}

func (s *sim) addWorker() {
	cs := fmt.Sprintf("cs%d", s.rng.IntN(4))
	id := s.tab.Register(s.now, WorkerInfo{Slots: 1 + s.rng.IntN(3), Chunkserver: cs, Rack: "r" + cs[2:]})
	s.workers = append(s.workers, &simWorker{id: id, cs: cs, lastHB: s.now, running: map[AttemptID]Assignment{}, outputs: map[AttemptID]bool{}})
	s.logf("register %s beside %s", id, cs)
}

func (s *sim) submit() {
	s.nextJob++
	id := JobID(fmt.Sprintf("job%d", s.nextJob))
	spec := JobSpec{ID: id, Reduces: 1 + s.rng.IntN(4)}
	for i := range s.rng.IntN(6) {
		spec.Splits = append(spec.Splits, Split{Path: fmt.Sprintf("/in/%s/f%d", id, i), Offset: int64(i) << 20, Length: 1 << 20,
			Replicas: []string{fmt.Sprintf("cs%d", s.rng.IntN(4)), fmt.Sprintf("cs%d", s.rng.IntN(4))}})
	}
	if len(spec.Splits) > 0 && s.rng.IntN(6) == 0 {
		s.poison[id] = s.rng.IntN(len(spec.Splits))
	}
	if err := s.tab.Submit(s.now, spec); err != nil {
		s.fatalf("submit: %v", err)
	}
	s.jobs[id] = spec
	s.logf("submit %s maps=%d reduces=%d", id, len(spec.Splits), spec.Reduces)
}

func (s *sim) heartbeat(w *simWorker) {
	running := make([]AttemptID, 0, len(w.running))
	for a := range w.running {
		running = append(running, a)
	}
	slices.SortFunc(running, compareAttempt)
	w.lastHB = s.now
	d, err := s.tab.Heartbeat(s.now, w.id, running)
	if errors.Is(err, ErrUnknownWorker) {
		// Declared dead while stalled: register again, drop everything.
		s.logf("%s unknown: re-register", w.id)
		w.dead = true
		s.addWorker()
		return
	}
	if err != nil {
		s.fatalf("heartbeat: %v", err)
	}
	s.apply(d)
}

// finish completes one running attempt on w, the way a worker would.
func (s *sim) finish(w *simWorker) {
	if len(w.running) == 0 {
		return
	}
	ids := make([]AttemptID, 0, len(w.running))
	for a := range w.running {
		ids = append(ids, a)
	}
	slices.SortFunc(ids, compareAttempt)
	id := ids[s.rng.IntN(len(ids))]
	a := w.running[id]
	job := id.Task.Job
	if id.Task.Kind == Map {
		if m, bad := s.poison[job]; bad && m == id.Task.Index || s.chaos && s.rng.IntN(15) == 0 {
			delete(w.running, id)
			s.failures[id.Task]++
			d, err := s.tab.TaskFailed(s.now, id, w.id, "map function panicked")
			if err != nil {
				s.failures[id.Task]--
			}
			s.check(w, "TaskFailed", id, err)
			s.apply(d)
			return
		}
		delete(w.running, id)
		w.outputs[id] = true
		loc := Counters{InputRecords: 1}
		d, err := s.tab.MapDone(s.now, id, w.id, loc)
		s.check(w, "MapDone", id, err)
		if err != nil {
			delete(w.outputs, id)
		}
		s.apply(d)
		return
	}
	// Reduce: fetch every map output; report the first one unreachable.
	outs, err := s.tab.MapOutputs(job)
	if err != nil {
		s.fatalf("MapOutputs: %v", err)
	}
	have := map[int]bool{}
	for _, o := range outs {
		src := s.worker(o.Worker)
		if src == nil || src.dead || !src.outputs[o.Attempt] || src.stalled && s.rng.IntN(2) == 0 {
			d, err := s.tab.FetchFailed(s.now, id, w.id, o.Attempt)
			s.check(w, "FetchFailed", id, err)
			s.apply(d)
			s.logf("fetch failure %s from %s", o.Attempt, o.Worker)
			return
		}
		have[o.Index] = true
	}
	if len(have) != a.Maps {
		return // still waiting for map output
	}
	delete(w.running, id)
	if s.chaos && s.rng.IntN(15) == 0 {
		s.failures[id.Task]++
		d, err := s.tab.TaskFailed(s.now, id, w.id, "reduce function error")
		if err != nil {
			s.failures[id.Task]--
		}
		s.check(w, "TaskFailed", id, err)
		s.apply(d)
		return
	}
	temp := fmt.Sprintf("/%s/_temporary/%s-%s", job, id, w.id)
	s.temps[temp] = true
	d, err := s.tab.ReduceDone(s.now, id, w.id, temp, Counters{OutputRecords: 1})
	s.check(w, "ReduceDone", id, err)
	if err != nil {
		delete(s.temps, temp)
	}
	s.apply(d)
	// A duplicate report (a retried RPC) changes nothing.
	if s.rng.IntN(4) == 0 {
		d, err := s.tab.ReduceDone(s.now, id, w.id, temp, Counters{OutputRecords: 1})
		if err == nil || len(d.Commits) > 0 {
			s.fatalf("duplicate ReduceDone of %s accepted: %+v", id, d)
		}
	}
}

// check accepts success or a stale-attempt answer (a worker's report racing
// its attempt's loss); anything else is a bug.
func (s *sim) check(w *simWorker, op string, id AttemptID, err error) {
	s.t.Helper()
	if errors.Is(err, ErrUnknownWorker) {
		// Declared dead while stalled: its reports are refused; it registers
		// again and drops everything, as a real worker does.
		s.logf("%s %s: %s unknown: re-register", op, id, w.id)
		w.dead = true
		s.addWorker()
		return
	}
	if err != nil && !errors.Is(err, ErrStaleAttempt) {
		s.fatalf("%s %s: %v", op, id, err)
	}
	if err != nil {
		s.logf("%s %s stale", op, id)
	}
}

// commitOne performs one outstanding rename; the model's file system refuses
// a rename onto an existing name, as the master does.
func (s *sim) commitOne(fail bool) {
	if len(s.commits) == 0 {
		return
	}
	i := s.rng.IntN(len(s.commits))
	p := s.commits[i]
	s.commits = slices.Delete(s.commits, i, i+1)
	var cerr error
	name := final(p.c.Attempt.Task.Job, p.part)
	if fail {
		cerr = errors.New("master unreachable")
		if st, _ := s.tab.Status(p.c.Attempt.Task.Job); st.State == Running {
			s.failures[p.c.Attempt.Task]++
		}
	} else {
		if prev, ok := s.fs[name]; ok {
			s.fatalf("partition %s committed twice: %s then %s", name, prev, p.c.Attempt)
		}
		if !s.temps[p.c.Temp] {
			s.fatalf("commit of discarded temp %s", p.c.Temp)
		}
		delete(s.temps, p.c.Temp)
		s.fs[name] = p.c.Attempt
	}
	d, err := s.tab.CommitResult(s.now, p.c.Attempt, cerr)
	if err != nil {
		s.fatalf("CommitResult %s: %v", p.c.Attempt, err)
	}
	s.apply(d)
	// A second report of the same outcome is refused.
	if _, err := s.tab.CommitResult(s.now, p.c.Attempt, nil); !errors.Is(err, ErrStaleAttempt) {
		s.fatalf("duplicate CommitResult %s: %v", p.c.Attempt, err)
	}
}

func (s *sim) step(chaos bool) {
	s.chaos = chaos
	s.now = s.now.Add(time.Duration(50+s.rng.IntN(1500)) * time.Millisecond)
	// Live workers heartbeat every 3 s, as real ones do (well within the
	// 10 s timeout); the random events below add more.
	for _, w := range s.live() {
		if s.now.Sub(w.lastHB) >= 3*time.Second {
			s.heartbeat(w)
		}
	}
	r := s.rng.IntN(100)
	switch {
	case r < 3:
		s.addWorker()
	case r < 6 && chaos:
		s.submit()
	case r < 9 && chaos:
		if l := s.live(); len(l) > 1 {
			w := l[s.rng.IntN(len(l))]
			w.dead = true
			clear(w.outputs)
			s.logf("kill -9 %s", w.id)
		}
	case r < 12 && chaos:
		if l := s.live(); len(l) > 1 {
			w := l[s.rng.IntN(len(l))]
			w.stalled = true
			s.logf("SIGSTOP %s", w.id)
		}
	case r < 16:
		for _, w := range s.workers {
			if w.stalled && !w.dead && (s.rng.IntN(2) == 0 || !chaos) {
				w.stalled = false
				s.logf("SIGCONT %s", w.id)
			}
		}
	case r < 45:
		if l := s.live(); len(l) > 0 {
			s.heartbeat(l[s.rng.IntN(len(l))])
		}
	case r < 75:
		if l := s.live(); len(l) > 0 {
			s.finish(l[s.rng.IntN(len(l))])
		}
	case r < 90:
		s.commitOne(chaos && s.rng.IntN(8) == 0)
	default:
		s.apply(s.tab.Tick(s.now))
	}
	s.checkTable()
}

// checkTable checks invariants of the table's state against the model.
func (s *sim) checkTable() {
	for _, st := range s.tab.Jobs() {
		if st.MapsDone < 0 || st.MapsDone > st.Maps || st.ReducesDone > st.Reduces {
			s.fatalf("job %s: maps %d/%d reduces %d/%d", st.ID, st.MapsDone, st.Maps, st.ReducesDone, st.Reduces)
		}
		committed := 0
		for p := range st.Reduces {
			if _, ok := s.fs[final(st.ID, p)]; ok {
				committed++
			}
		}
		if st.State == Running && committed != st.ReducesDone {
			s.fatalf("job %s: %d partitions renamed, table counts %d", st.ID, committed, st.ReducesDone)
		}
	}
	for _, id := range s.tab.Workers() {
		for _, a := range s.tab.Running(id) {
			if st, _ := s.tab.Status(a.Task.Job); st.State != Running {
				s.fatalf("%s runs %s of ended job", id, a)
			}
		}
	}
}

func TestModelRandomEvents(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, uint64(seed)) })
	}
}

func runModel(t *testing.T, seed uint64) {
	s := &sim{
		t:        t,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		tab:      New(Options{Incarnation: 1, MaxAttempts: 4, WorkerTimeout: 10 * time.Second, BackupMin: 3 * time.Second}),
		now:      time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
		fs:       map[string]AttemptID{},
		jobs:     map[JobID]JobSpec{},
		poison:   map[JobID]int{},
		finished: map[JobID]JobResult{},
		temps:    map[string]bool{},
		failures: map[TaskID]int{},
	}
	for range 1 + s.rng.IntN(3) {
		s.addWorker()
	}
	for range 1 + s.rng.IntN(3) {
		s.submit()
	}
	for range 400 + s.rng.IntN(400) {
		s.step(true)
	}
	// Calm: no new faults, stalled workers resume, everything must end.
	for _, w := range s.workers {
		w.stalled = false
	}
	if len(s.live()) == 0 {
		s.addWorker()
	}
	for i := 0; len(s.finished) < len(s.jobs); i++ {
		if i > 20000 {
			var open []string
			for _, st := range s.tab.Jobs() {
				if st.State == Running {
					open = append(open, fmt.Sprintf("%s maps %d/%d reduces %d/%d", st.ID, st.MapsDone, st.Maps, st.ReducesDone, st.Reduces))
				}
			}
			s.fatalf("jobs did not end: %v", open)
		}
		s.step(false)
	}
	for id, spec := range s.jobs {
		if s.finished[id].State != Succeeded {
			continue
		}
		for p := range spec.Reduces {
			if _, ok := s.fs[final(id, p)]; !ok {
				s.fatalf("job %s partition %d missing", id, p)
			}
		}
	}
	// Temp outputs left behind belong only to failed jobs (the caller
	// deletes a failed job's whole output directory).
	for temp := range s.temps {
		job := JobID(strings.Split(temp, "/")[1])
		if s.finished[job].State == Succeeded {
			s.fatalf("temp %s of succeeded job %s never committed or discarded", temp, job)
		}
	}
}
