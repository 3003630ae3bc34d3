// Package tasktable is the MapReduce coordinator's task table: a pure state
// machine with no I/O, no goroutines and no clock of its own. Every input is
// an event method on Table carrying the time it happened; every output is a
// value the caller acts on (run this attempt on that worker, kill that one,
// rename this reduce output into place, the job finished). The coordinator's
// RPC server, timers and journal sit outside it, as etcd-io/raft's node sits
// outside its raft state machine, so the table can be driven by random event
// sequences in a model test (model_test.go).
//
// The loop that feeds it (paper section 3.1 and 3.3 in brackets):
//
//	t := tasktable.New(opts)
//	t.Submit(now, spec)                  // a job: one map task per split, R reduce tasks
//	id := t.Register(now, workerInfo)    // a worker joined
//	d := t.Heartbeat(now, id, running)   // [3.3] liveness; d.Run: attempts to start there
//	d = t.MapDone(now, attempt, result)  // map output now lives on that worker's disk
//	d = t.ReduceDone(now, attempt, temp) // d.Commits: rename temp -> part-r-NNNNN
//	d = t.CommitResult(now, attempt, err)
//	d = t.Tick(now)                      // dead workers, backup tasks [3.6]
//
// Invariants the model test checks:
//   - A partition is committed at most once: the table hands out a Commit for a
//     reduce task only while no other Commit of that task is outstanding and
//     the task is not committed, and the rename (which fails onto an existing
//     name) is the fence that makes the decision stick.
//   - A reduce attempt is only started once every map task of its job has
//     completed output; map output lost with its worker (death, fetch failure
//     reported by a reducer) makes the map task idle again while any reduce
//     task of the job is still uncommitted [3.3].
//   - Reports name an attempt (job, kind, task, attempt number) and the worker
//     that ran it; a report from an attempt that is no longer running (killed,
//     lost with its worker, beaten by a backup) changes nothing.
//   - A task that failed MaxAttempts times fails the job with an error naming
//     the task and its input; every job eventually finishes or fails once
//     workers keep heartbeating.
package tasktable
