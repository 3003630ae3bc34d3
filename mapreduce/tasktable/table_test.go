package tasktable

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

func mustHB(t *testing.T, tab *Table, now time.Time, w WorkerID, running ...AttemptID) Decisions {
	t.Helper()
	d, err := tab.Heartbeat(now, w, running)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestLocalityPrefersReplicaThenRack(t *testing.T) {
	tab := New(Options{})
	spec := JobSpec{ID: "j", Reduces: 1, Splits: []Split{
		{Path: "/a", Length: 1, Replicas: []string{"cs1"}, Racks: []string{"r1"}},
		{Path: "/b", Length: 1, Replicas: []string{"cs2"}, Racks: []string{"r2"}},
		{Path: "/c", Length: 1, Replicas: []string{"cs3"}, Racks: []string{"r2"}},
	}}
	if err := tab.Submit(t0, spec); err != nil {
		t.Fatal(err)
	}
	w := tab.Register(t0, WorkerInfo{Slots: 1, Chunkserver: "cs3", Rack: "r2"})
	d := mustHB(t, tab, t0, w)
	if len(d.Run) != 1 || d.Run[0].Split.Path != "/c" || d.Run[0].Locality != DataLocal {
		t.Fatalf("first assignment %+v, want /c data-local", d.Run)
	}
	w2 := tab.Register(t0, WorkerInfo{Slots: 1, Chunkserver: "cs9", Rack: "r2"})
	d = mustHB(t, tab, t0, w2)
	if len(d.Run) != 1 || d.Run[0].Split.Path != "/b" || d.Run[0].Locality != RackLocal {
		t.Fatalf("second assignment %+v, want /b rack-local", d.Run)
	}
	w3 := tab.Register(t0, WorkerInfo{Slots: 1})
	d = mustHB(t, tab, t0, w3)
	if len(d.Run) != 1 || d.Run[0].Split.Path != "/a" || d.Run[0].Locality != Remote {
		t.Fatalf("third assignment %+v, want /a remote", d.Run)
	}
}

func TestBackupNearEndFirstCommitWins(t *testing.T) {
	tab := New(Options{BackupMin: time.Second, WorkerTimeout: time.Hour})
	if err := tab.Submit(t0, JobSpec{ID: "j", Reduces: 1, Splits: []Split{{Path: "/a"}, {Path: "/b"}}}); err != nil {
		t.Fatal(err)
	}
	w1 := tab.Register(t0, WorkerInfo{Slots: 2})
	d := mustHB(t, tab, t0, w1)
	if len(d.Run) != 2 {
		t.Fatalf("want 2 maps on w1, got %+v", d.Run)
	}
	a, b := d.Run[0].Attempt, d.Run[1].Attempt
	if _, err := tab.MapDone(t0.Add(time.Second), a, w1, Counters{}); err != nil {
		t.Fatal(err)
	}
	w2 := tab.Register(t0, WorkerInfo{Slots: 1})
	// b has run 1 s: not yet a straggler (threshold 2 x the mean 1 s).
	if d := mustHB(t, tab, t0.Add(time.Second), w2); len(d.Run) != 0 {
		t.Fatalf("backup too early: %+v", d.Run)
	}
	d = mustHB(t, tab, t0.Add(3*time.Second), w2)
	if len(d.Run) != 1 || !d.Run[0].Backup || d.Run[0].Attempt.Task != b.Task {
		t.Fatalf("want a backup of %s, got %+v", b, d.Run)
	}
	backup := d.Run[0].Attempt
	d, err := tab.MapDone(t0.Add(4*time.Second), backup, w2, Counters{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Kill) != 1 || d.Kill[0].Attempt != b || d.Kill[0].Worker != w1 {
		t.Fatalf("the original was not killed: %+v", d.Kill)
	}
	if _, err := tab.MapDone(t0.Add(5*time.Second), b, w1, Counters{}); !errors.Is(err, ErrStaleAttempt) {
		t.Fatalf("late MapDone of the beaten original: %v, want ErrStaleAttempt", err)
	}
	st, _ := tab.Status("j")
	if st.MapsDone != 2 || st.Counters.BackupTasks != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestRepeatedFailureFailsJobNamingTask(t *testing.T) {
	tab := New(Options{MaxAttempts: 3})
	if err := tab.Submit(t0, JobSpec{ID: "j", Reduces: 2, Splits: []Split{{Path: "/in/x", Offset: 64, Length: 64}}}); err != nil {
		t.Fatal(err)
	}
	w := tab.Register(t0, WorkerInfo{Slots: 1})
	var d Decisions
	for i := range 3 {
		d = mustHB(t, tab, t0, w)
		if len(d.Run) != 1 {
			t.Fatalf("attempt %d not assigned: %+v", i+1, d)
		}
		var err error
		d, err = tab.TaskFailed(t0, d.Run[0].Attempt, w, "panic: bad record at offset 70")
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(d.Finished) != 1 || d.Finished[0].State != Failed {
		t.Fatalf("job did not fail: %+v", d)
	}
	msg := d.Finished[0].Err.Error()
	for _, want := range []string{"j/m00000", "/in/x bytes 64-128", "3 times", "bad record"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if d := mustHB(t, tab, t0, w); len(d.Run) != 0 {
		t.Fatalf("a failed job still assigns: %+v", d.Run)
	}
}

func TestDeadWorkerLosesCompletedMaps(t *testing.T) {
	tab := New(Options{WorkerTimeout: 10 * time.Second})
	if err := tab.Submit(t0, JobSpec{ID: "j", Reduces: 1, Splits: []Split{{Path: "/a"}}}); err != nil {
		t.Fatal(err)
	}
	w1 := tab.Register(t0, WorkerInfo{Slots: 1})
	d := mustHB(t, tab, t0, w1)
	if _, err := tab.MapDone(t0, d.Run[0].Attempt, w1, Counters{}); err != nil {
		t.Fatal(err)
	}
	w2 := tab.Register(t0.Add(5*time.Second), WorkerInfo{Slots: 1})
	d = mustHB(t, tab, t0.Add(5*time.Second), w2)
	if len(d.Run) != 1 || d.Run[0].Attempt.Task.Kind != Reduce {
		t.Fatalf("want the reduce on w2: %+v", d.Run)
	}
	red := d.Run[0].Attempt
	mustHB(t, tab, t0.Add(12*time.Second), w2, red)
	d = tab.Tick(t0.Add(12 * time.Second))
	if len(d.Lost) != 1 || d.Lost[0] != w1 {
		t.Fatalf("w1 not declared dead: %+v", d)
	}
	if outs, _ := tab.MapOutputs("j"); len(outs) != 0 {
		t.Fatalf("map output of a dead worker still listed: %+v", outs)
	}
	// Every slot of every worker is taken by the reduce that waits for the
	// lost map: the reduce is preempted (killed, not failed) so the map can
	// run again, instead of both waiting forever.
	d = mustHB(t, tab, t0.Add(13*time.Second), w2, red)
	if len(d.Kill) != 1 || d.Kill[0].Attempt != red || len(d.Run) != 1 || d.Run[0].Attempt.Task.Kind != Map {
		t.Fatalf("want the reduce preempted for the lost map on w2: %+v", d)
	}
	if _, err := tab.MapDone(t0.Add(14*time.Second), d.Run[0].Attempt, w2, Counters{}); err != nil {
		t.Fatal(err)
	}
	w3 := tab.Register(t0.Add(14*time.Second), WorkerInfo{Slots: 1})
	d = mustHB(t, tab, t0.Add(14*time.Second), w3)
	if len(d.Run) != 1 || d.Run[0].Attempt.Task.Kind != Reduce {
		t.Fatalf("the preempted reduce did not run again: %+v", d.Run)
	}
	if st, _ := tab.Status("j"); st.Counters.FailedAttempts != 0 {
		t.Fatalf("preemption counted as a failure: %+v", st.Counters)
	}
	if _, err := tab.Heartbeat(t0.Add(13*time.Second), w1, nil); !errors.Is(err, ErrUnknownWorker) {
		t.Fatalf("heartbeat of a dead worker: %v, want ErrUnknownWorker", err)
	}
	st, _ := tab.Status("j")
	if st.Counters.ReexecutedTasks != 1 {
		t.Fatalf("re-executed %d, want 1", st.Counters.ReexecutedTasks)
	}
}

func TestRestoreCommittedPartitions(t *testing.T) {
	tab := New(Options{Incarnation: 2})
	if err := tab.Submit(t0, JobSpec{ID: "j", Reduces: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.Restore(t0, "j", 0, Counters{OutputRecords: 5}); err != nil {
		t.Fatal(err)
	}
	w := tab.Register(t0, WorkerInfo{Slots: 4})
	if !strings.HasPrefix(string(w), "w2-") {
		t.Fatalf("worker id %s does not carry the incarnation", w)
	}
	d := mustHB(t, tab, t0, w)
	if len(d.Run) != 1 || d.Run[0].Attempt.Task.Index != 1 {
		t.Fatalf("want only partition 1 to run: %+v", d.Run)
	}
	d, err := tab.Restore(t0, "j", 1, Counters{OutputRecords: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Finished) != 1 || d.Finished[0].State != Succeeded || d.Finished[0].Counters.OutputRecords != 12 {
		t.Fatalf("restore of the last partition: %+v", d)
	}
	if len(d.Kill) != 1 {
		t.Fatalf("the running attempt of the restored partition was not killed: %+v", d)
	}
}

func TestSubmitRejectsBadSpecs(t *testing.T) {
	tab := New(Options{})
	for _, spec := range []JobSpec{{ID: "", Reduces: 1}, {ID: "x", Reduces: 0}} {
		if err := tab.Submit(t0, spec); !errors.Is(err, ErrBadJob) {
			t.Errorf("Submit(%+v) = %v, want ErrBadJob", spec, err)
		}
	}
	if err := tab.Submit(t0, JobSpec{ID: "x", Reduces: 1}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Submit(t0, JobSpec{ID: "x", Reduces: 1}); !errors.Is(err, ErrBadJob) {
		t.Errorf("duplicate job id: %v", err)
	}
	if len(tab.Jobs()) != 1 {
		t.Fatalf("bad specs changed the table: %+v", tab.Jobs())
	}
}
