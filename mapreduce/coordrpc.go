package mapreduce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/mapreduce/mrpb"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// coordinatorRPC is the gRPC face of a Coordinator: it checks requests,
// turns them into table events under the lock and hands back what the
// table decided.
type coordinatorRPC struct {
	mrpb.UnimplementedCoordinatorServer
	c *Coordinator
}

// maxSlots bounds a worker's claimed slots (a forged Register cannot make
// the table loop over millions).
const maxSlots = 1024

func (r *coordinatorRPC) Register(ctx context.Context, req *mrpb.RegisterRequest) (*mrpb.RegisterResponse, error) {
	if req.GetProtocol() != ProtocolVersion {
		return nil, status.Errorf(codes.FailedPrecondition,
			"worker speaks MapReduce protocol %d, this coordinator speaks %d: run the same gfs version on both", req.GetProtocol(), ProtocolVersion)
	}
	if req.GetSlots() < 1 || req.GetSlots() > maxSlots {
		return nil, status.Errorf(codes.InvalidArgument, "slots %d: want 1..%d", req.GetSlots(), maxSlots)
	}
	if req.GetShuffleAddr() == "" {
		return nil, status.Error(codes.InvalidArgument, "no shuffle address")
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	info := tasktable.WorkerInfo{Slots: int(req.GetSlots()), Chunkserver: req.GetChunkserver(), Rack: req.GetRack()}
	id := c.table.Register(c.opts.Now(), info)
	c.workers[id] = &workerMeta{info: info, shuffle: req.GetShuffleAddr(), host: req.GetHost()}
	c.log.Info("worker registered", "worker", id, "slots", info.Slots, "chunkserver", info.Chunkserver, "shuffle", req.GetShuffleAddr())
	return &mrpb.RegisterResponse{WorkerId: string(id), HeartbeatIntervalMs: c.opts.HeartbeatInterval.Milliseconds(), Protocol: ProtocolVersion}, nil
}

// errUnknownWorker tells a worker to register again (the coordinator
// restarted, or declared it dead): it drops everything it was running.
var errUnknownWorker = status.Error(codes.NotFound, "unknown worker: register again")

func (r *coordinatorRPC) Heartbeat(ctx context.Context, req *mrpb.HeartbeatRequest) (*mrpb.HeartbeatResponse, error) {
	running := make([]tasktable.AttemptID, 0, len(req.GetRunning()))
	for _, a := range req.GetRunning() {
		id, err := attemptFromPB(a)
		if err != nil {
			return nil, err
		}
		running = append(running, id)
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	wid := tasktable.WorkerID(req.GetWorkerId())
	w, ok := c.workers[wid]
	if !ok {
		return nil, errUnknownWorker
	}
	d, err := c.table.Heartbeat(c.opts.Now(), wid, running)
	if err != nil {
		return nil, tableStatus(err)
	}
	c.apply(d)
	resp := &mrpb.HeartbeatResponse{Run: w.run, Kill: w.kill, EndedJobs: w.endedJobs}
	w.run, w.kill, w.endedJobs = nil, nil, nil
	return resp, nil
}

func (r *coordinatorRPC) ReportMap(ctx context.Context, req *mrpb.ReportMapRequest) (*mrpb.ReportResponse, error) {
	id, err := attemptFromPB(req.GetAttempt())
	if err != nil {
		return nil, err
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.table.MapDone(c.opts.Now(), id, tasktable.WorkerID(req.GetWorkerId()), countersFromPB(req.GetCounters()))
	if err != nil {
		return nil, tableStatus(err)
	}
	c.apply(d)
	return &mrpb.ReportResponse{}, nil
}

func (r *coordinatorRPC) ReportReduce(ctx context.Context, req *mrpb.ReportReduceRequest) (*mrpb.ReportResponse, error) {
	id, err := attemptFromPB(req.GetAttempt())
	if err != nil {
		return nil, err
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.jobs[id.Task.Job]
	if m == nil {
		return nil, status.Errorf(codes.NotFound, "unknown job %s", id.Task.Job)
	}
	// The temp name is the coordinator's own (the assignment carried it): a
	// worker cannot make the commit rename some other file into place.
	want := c.assignment(m, tasktable.Assignment{Attempt: id}).GetTemp()
	if req.GetTemp() != want {
		return nil, status.Errorf(codes.InvalidArgument, "attempt %s reported output %q, assigned %q", id, req.GetTemp(), want)
	}
	cnt := countersFromPB(req.GetCounters())
	d, err := c.table.ReduceDone(c.opts.Now(), id, tasktable.WorkerID(req.GetWorkerId()), want, cnt)
	if err != nil {
		return nil, tableStatus(err)
	}
	m.reduceCounters[id] = cnt
	c.apply(d)
	return &mrpb.ReportResponse{}, nil
}

func (r *coordinatorRPC) ReportFailure(ctx context.Context, req *mrpb.ReportFailureRequest) (*mrpb.ReportResponse, error) {
	id, err := attemptFromPB(req.GetAttempt())
	if err != nil {
		return nil, err
	}
	reason := req.GetReason()
	if len(reason) > 4096 {
		reason = reason[:4096] + "..."
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.table.TaskFailed(c.opts.Now(), id, tasktable.WorkerID(req.GetWorkerId()), reason)
	if err != nil {
		return nil, tableStatus(err)
	}
	c.log.Warn("attempt failed", "attempt", id, "worker", req.GetWorkerId(), "reason", reason)
	c.apply(d)
	return &mrpb.ReportResponse{}, nil
}

func (r *coordinatorRPC) MapOutputs(ctx context.Context, req *mrpb.MapOutputsRequest) (*mrpb.MapOutputsResponse, error) {
	id, err := attemptFromPB(req.GetAttempt())
	if err != nil {
		return nil, err
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	wid := tasktable.WorkerID(req.GetWorkerId())
	if _, ok := c.workers[wid]; !ok {
		return nil, errUnknownWorker
	}
	if !c.isRunning(wid, id) {
		return nil, status.Errorf(codes.Aborted, "attempt %s is not running on %s", id, wid)
	}
	outs, err := c.table.MapOutputs(id.Task.Job)
	if err != nil {
		return nil, tableStatus(err)
	}
	resp := &mrpb.MapOutputsResponse{Total: int32(len(c.jobs[id.Task.Job].rec.Splits))}
	for _, o := range outs {
		w, ok := c.workers[o.Worker]
		if !ok {
			continue
		}
		resp.Maps = append(resp.Maps, &mrpb.MapOutputLocation{Index: int32(o.Index), Attempt: int32(o.Attempt.Attempt), ShuffleAddr: w.shuffle})
	}
	return resp, nil
}

func (c *Coordinator) isRunning(w tasktable.WorkerID, id tasktable.AttemptID) bool {
	for _, a := range c.table.Running(w) {
		if a == id {
			return true
		}
	}
	return false
}

func (r *coordinatorRPC) ReportFetchFailure(ctx context.Context, req *mrpb.ReportFetchFailureRequest) (*mrpb.ReportResponse, error) {
	id, err := attemptFromPB(req.GetAttempt())
	if err != nil {
		return nil, err
	}
	mid, err := attemptFromPB(req.GetMap())
	if err != nil {
		return nil, err
	}
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	d, err := c.table.FetchFailed(c.opts.Now(), id, tasktable.WorkerID(req.GetWorkerId()), mid)
	if err != nil {
		return nil, tableStatus(err)
	}
	c.log.Warn("map output fetch failed; map runs again", "reduce", id, "map", mid, "reason", req.GetReason())
	c.apply(d)
	return &mrpb.ReportResponse{}, nil
}

func (r *coordinatorRPC) Submit(ctx context.Context, req *mrpb.SubmitRequest) (*mrpb.SubmitResponse, error) {
	return r.c.submit(ctx, req)
}

func (r *coordinatorRPC) Status(ctx context.Context, req *mrpb.StatusRequest) (*mrpb.StatusResponse, error) {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &mrpb.StatusResponse{Workers: int32(len(c.workers))}
	for _, id := range c.order {
		if req.GetJob() != "" && string(id) != req.GetJob() {
			continue
		}
		resp.Jobs = append(resp.Jobs, c.jobStatus(c.jobs[id]))
	}
	if req.GetJob() != "" && len(resp.Jobs) == 0 {
		return nil, status.Errorf(codes.NotFound, "unknown job %s", req.GetJob())
	}
	return resp, nil
}

// jobStatus reports a job; called with c.mu held.
func (c *Coordinator) jobStatus(m *jobMeta) *mrpb.JobStatus {
	js := &mrpb.JobStatus{Job: string(m.rec.ID), App: m.rec.App, Output: m.rec.Output, Inputs: m.rec.Inputs,
		Maps: int32(len(m.rec.Splits)), Reduces: int32(m.rec.Reduces), SubmittedUnixMs: m.rec.SubmittedMs,
		State: m.state.String(), Error: m.err}
	cnt := m.counters
	if s, err := c.table.Status(m.rec.ID); err == nil {
		js.MapsDone, js.ReducesDone = int32(s.MapsDone), int32(s.ReducesDone)
		cnt = s.Counters
	} else if m.state == tasktable.Succeeded {
		js.MapsDone, js.ReducesDone = js.Maps, js.Reduces
	}
	if !m.ended.IsZero() {
		js.EndedUnixMs = m.ended.UnixMilli()
	}
	sub := m.rec.SubmittedMs
	if !m.mapsDoneAt.IsZero() {
		js.PhaseMapMs = m.mapsDoneAt.UnixMilli() - sub
		if !m.reducedAt.IsZero() {
			js.PhaseReduceMs = m.reducedAt.Sub(m.mapsDoneAt).Milliseconds()
			if !m.ended.IsZero() {
				js.PhaseCommitMs = m.ended.Sub(m.reducedAt).Milliseconds()
			}
		}
	}
	b, _ := json.Marshal(cnt)
	js.CountersJson = string(b)
	return js
}

// tableStatus maps a task-table error to a gRPC status.
func tableStatus(err error) error {
	switch {
	case errors.Is(err, tasktable.ErrUnknownWorker):
		return errUnknownWorker
	case errors.Is(err, tasktable.ErrStaleAttempt):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, tasktable.ErrUnknownJob):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, tasktable.ErrBadJob):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func attemptPB(a tasktable.AttemptID) *mrpb.Attempt {
	return &mrpb.Attempt{Job: string(a.Task.Job), Kind: uint32(a.Task.Kind), Index: int32(a.Task.Index), Attempt: int32(a.Attempt)}
}

func attemptFromPB(a *mrpb.Attempt) (tasktable.AttemptID, error) {
	if a == nil || a.GetJob() == "" || (a.GetKind() != uint32(tasktable.Map) && a.GetKind() != uint32(tasktable.Reduce)) ||
		a.GetIndex() < 0 || a.GetAttempt() < 0 {
		return tasktable.AttemptID{}, status.Error(codes.InvalidArgument, fmt.Sprintf("bad attempt %v", a))
	}
	return tasktable.AttemptID{Task: tasktable.TaskID{Job: tasktable.JobID(a.GetJob()), Kind: tasktable.Kind(a.GetKind()), Index: int(a.GetIndex())},
		Attempt: int(a.GetAttempt())}, nil
}

func countersFromPB(p *mrpb.Counters) tasktable.Counters {
	return tasktable.Counters{
		InputRecords: p.GetInputRecords(), InputBytes: p.GetInputBytes(),
		MapOutputRecords: p.GetMapOutputRecords(), MapOutputBytes: p.GetMapOutputBytes(),
		CombineInputRecords: p.GetCombineInputRecords(), CombineOutputRecords: p.GetCombineOutputRecords(),
		SpilledRecords: p.GetSpilledRecords(), ShuffleBytes: p.GetShuffleBytes(),
		ReduceInputGroups: p.GetReduceInputGroups(), ReduceInputRecords: p.GetReduceInputRecords(),
		OutputRecords: p.GetOutputRecords(), OutputBytes: p.GetOutputBytes(),
	}
}

func countersPB(c tasktable.Counters) *mrpb.Counters {
	return &mrpb.Counters{
		InputRecords: c.InputRecords, InputBytes: c.InputBytes,
		MapOutputRecords: c.MapOutputRecords, MapOutputBytes: c.MapOutputBytes,
		CombineInputRecords: c.CombineInputRecords, CombineOutputRecords: c.CombineOutputRecords,
		SpilledRecords: c.SpilledRecords, ShuffleBytes: c.ShuffleBytes,
		ReduceInputGroups: c.ReduceInputGroups, ReduceInputRecords: c.ReduceInputRecords,
		OutputRecords: c.OutputRecords, OutputBytes: c.OutputBytes,
	}
}
