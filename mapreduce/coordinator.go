package mapreduce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/dirlock"
	"github.com/gfs-go/gfs/mapreduce/journal"
	"github.com/gfs-go/gfs/mapreduce/mrpb"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// ProtocolVersion is the coordinator protocol workers and coordinator
// speak; a worker with another one is refused at Register.
const ProtocolVersion = 1

// CoordinatorOptions configure a Coordinator. Zero values mean the defaults
// given.
type CoordinatorOptions struct {
	// Dir holds the journal (required); it is locked while the coordinator
	// runs.
	Dir string
	// FS is the coordinator's GFS client (required): input lookups, output
	// directories, commits. The caller closes it after Close.
	FS *client.Client
	// Apps are the apps jobs may name (required).
	Apps Apps
	// TLS turns on mutual TLS on the coordinator's gRPC server: worker
	// methods then need a worker certificate. Zero = plaintext.
	TLS tlsconfig.Files
	// HeartbeatInterval is what workers are told to use (1 s).
	HeartbeatInterval time.Duration
	// Table tunes the task table (worker timeout 10 s, backups, attempts).
	Table tasktable.Options
	// Logger receives events; nil discards.
	Logger *slog.Logger
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Coordinator is the MapReduce coordinator (paper section 3.1: the
// master): it owns the task table, hands attempts to workers on their
// heartbeats, renames committed reduce output into place and journals
// every job and commit so a restart resumes.
type Coordinator struct {
	opts CoordinatorOptions
	log  *slog.Logger
	lock *dirlock.Lock
	jrnl *journal.Journal
	srv  *grpc.Server

	incarnation uint64 // this lifetime's number, from the journal

	mu      sync.Mutex // guards everything below
	table   *tasktable.Table
	jobs    map[tasktable.JobID]*jobMeta
	order   []tasktable.JobID
	workers map[tasktable.WorkerID]*workerMeta
	reqs    map[string]tasktable.JobID // submit request id -> job
	nextJob int
	closed  bool

	ctx    context.Context // ended by Close: background commits and finishes
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type workerMeta struct {
	info      tasktable.WorkerInfo
	shuffle   string
	host      string
	run       []*mrpb.Assignment
	kill      []*mrpb.Attempt
	endedJobs []string
}

// jobMeta is what the coordinator knows of a job beyond the table.
type jobMeta struct {
	rec        jobRecord
	state      tasktable.JobState // Succeeded only once _SUCCESS is written
	finishing  bool               // the table finished it; output being finalised
	err        string
	counters   tasktable.Counters
	ended      time.Time
	committed  map[int]bool
	mapsDoneAt time.Time
	reducedAt  time.Time
	// reduceCounters: counters of reduce attempts awaiting their commit,
	// journalled with it.
	reduceCounters map[tasktable.AttemptID]tasktable.Counters
}

// NewCoordinator opens (or creates) the coordinator's directory and
// journal and resumes the jobs it holds: each unfinished job is submitted
// to a fresh task table with its committed partitions restored, so only
// the work that was not committed runs again.
func NewCoordinator(ctx context.Context, opts CoordinatorOptions) (*Coordinator, error) {
	if opts.Dir == "" || opts.FS == nil || opts.Apps == nil {
		return nil, errors.New("mapreduce: CoordinatorOptions needs Dir, FS and Apps")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := dirlock.Acquire(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	j, recs, err := journal.Open(filepath.Join(opts.Dir, "journal"))
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	c := &Coordinator{opts: opts, log: log, lock: lock, jrnl: j,
		jobs: map[tasktable.JobID]*jobMeta{}, workers: map[tasktable.WorkerID]*workerMeta{}, reqs: map[string]tasktable.JobID{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.resume(ctx, recs); err != nil {
		c.closeFiles()
		return nil, err
	}
	return c, nil
}

// resume replays the journal into a fresh table.
func (c *Coordinator) resume(ctx context.Context, recs [][]byte) error {
	st, err := replay(recs)
	if err != nil {
		return fmt.Errorf("coordinator: journal: %w", err)
	}
	inc := st.incarnation + 1
	if err := c.append(entry{Type: "start", Incarnation: inc}); err != nil {
		return err
	}
	c.incarnation = inc
	topts := c.opts.Table
	topts.Incarnation = inc
	c.table = tasktable.New(topts)
	c.nextJob = st.jobs
	now := c.opts.Now()
	for _, rec := range st.order {
		m := &jobMeta{rec: *rec, state: tasktable.Running, committed: map[int]bool{}, reduceCounters: map[tasktable.AttemptID]tasktable.Counters{}}
		c.jobs[rec.ID] = m
		c.order = append(c.order, rec.ID)
		if rec.RequestID != "" {
			c.reqs[rec.RequestID] = rec.ID
		}
		if e, ok := st.ends[rec.ID]; ok {
			m.state, m.err, m.counters, m.ended = parseState(e.State), e.Error, e.Counters, time.UnixMilli(e.EndedMs)
			continue
		}
		spec := tasktable.JobSpec{ID: rec.ID, Reduces: rec.Reduces, Splits: c.locateSplits(ctx, rec.Splits, rec.ChunkSize)}
		if err := c.table.Submit(now, spec); err != nil {
			return fmt.Errorf("coordinator: resume %s: %w", rec.ID, err)
		}
		// Partitions renamed into place but not journalled (a crash between
		// the rename and the journal write) count as committed too: the
		// rename is the fence.
		for p, cnt := range st.commits[rec.ID] {
			m.committed[p] = true
			d, _ := c.table.Restore(now, rec.ID, p, cnt)
			c.apply(d)
		}
		for _, p := range c.committedOnDisk(ctx, *rec) {
			if m.committed[p] {
				continue
			}
			if err := c.append(entry{Type: "commit", Job: rec.ID, Partition: p}); err != nil {
				return err
			}
			m.committed[p] = true
			d, _ := c.table.Restore(now, rec.ID, p, tasktable.Counters{})
			c.apply(d)
		}
		c.log.Info("resumed job", "job", rec.ID, "committed", len(m.committed), "reduces", rec.Reduces)
	}
	return nil
}

// committedOnDisk lists the partitions whose final part file exists.
func (c *Coordinator) committedOnDisk(ctx context.Context, rec jobRecord) []int {
	infos, err := c.opts.FS.List(ctx, rec.Output)
	if err != nil {
		return nil
	}
	var out []int
	for _, fi := range infos {
		var p int
		if _, err := fmt.Sscanf(fi.Name, "part-r-%05d", &p); err == nil && fi.Name == partName(p) && p < rec.Reduces {
			out = append(out, p)
		}
	}
	return out
}

// Serve answers RPCs on lis until Close, then returns nil.
func (c *Coordinator) Serve(lis net.Listener) error {
	sopts, err := c.serverOptions()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("coordinator: closed")
	}
	c.srv = grpc.NewServer(sopts...)
	mrpb.RegisterCoordinatorServer(c.srv, &coordinatorRPC{c: c})
	srv := c.srv
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.tickLoop()
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

// workerMethods need a worker certificate under TLS.
var workerMethods = []string{
	mrpb.Coordinator_Register_FullMethodName, mrpb.Coordinator_Heartbeat_FullMethodName,
	mrpb.Coordinator_ReportMap_FullMethodName, mrpb.Coordinator_ReportReduce_FullMethodName,
	mrpb.Coordinator_ReportFailure_FullMethodName, mrpb.Coordinator_MapOutputs_FullMethodName,
	mrpb.Coordinator_ReportFetchFailure_FullMethodName,
}

func (c *Coordinator) serverOptions() ([]grpc.ServerOption, error) {
	cfg, err := tlsconfig.Server(c.opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	sopts := control.NewServerOptions(control.ServerOptions{TLS: cfg})
	if cfg == nil {
		return sopts, nil
	}
	policy := tlsconfig.Policy{Methods: map[string][]tlsconfig.Role{}}
	for _, m := range workerMethods {
		policy.Methods[m] = []tlsconfig.Role{tlsconfig.RoleWorker}
	}
	return append(sopts, policy.ServerOptions()...), nil
}

func (c *Coordinator) tickLoop() {
	t := time.NewTicker(c.opts.HeartbeatInterval / 2)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		d := c.table.Tick(c.opts.Now())
		for _, id := range d.Lost {
			c.log.Warn("worker lost", "worker", id)
		}
		c.apply(d)
		c.mu.Unlock()
	}
}

// Close stops serving and waits for background commits.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	srv := c.srv
	c.mu.Unlock()
	c.cancel()
	if srv != nil {
		srv.Stop()
	}
	c.wg.Wait()
	return c.closeFiles()
}

func (c *Coordinator) closeFiles() error {
	err := c.jrnl.Close()
	if rerr := c.lock.Release(); err == nil {
		err = rerr
	}
	return err
}

// apply acts on the table's decisions. Called with c.mu held.
func (c *Coordinator) apply(d tasktable.Decisions) {
	for _, a := range d.Run {
		w, ok := c.workers[a.Worker]
		m := c.jobs[a.Attempt.Task.Job]
		if !ok || m == nil {
			continue
		}
		w.run = append(w.run, c.assignment(m, a))
	}
	for _, k := range d.Kill {
		if w, ok := c.workers[k.Worker]; ok {
			w.kill = append(w.kill, attemptPB(k.Attempt))
		}
	}
	for _, cm := range d.Commits {
		c.goBackground(func(ctx context.Context) { c.commit(ctx, cm) })
	}
	for _, ds := range d.Discards {
		c.goBackground(func(ctx context.Context) { c.discard(ctx, ds.Temp) })
	}
	for _, id := range d.Lost {
		delete(c.workers, id)
	}
	for _, f := range d.Finished {
		m := c.jobs[f.Job]
		if m == nil || m.finishing {
			continue
		}
		m.finishing = true
		m.counters = f.Counters
		if f.Err != nil {
			m.err = f.Err.Error()
		}
		c.goBackground(func(ctx context.Context) { c.finish(ctx, m, f) })
	}
	c.notePhases()
}

// notePhases records when each running job's map and reduce phases ended.
func (c *Coordinator) notePhases() {
	now := c.opts.Now()
	for _, id := range c.order {
		m := c.jobs[id]
		if m.state != tasktable.Running {
			continue
		}
		s, err := c.table.Status(id)
		if err != nil {
			continue
		}
		if m.mapsDoneAt.IsZero() && s.MapsDone == s.Maps {
			m.mapsDoneAt = now
		}
		if m.reducedAt.IsZero() && s.ReducesDone == s.Reduces {
			m.reducedAt = now
		}
	}
}

func (c *Coordinator) goBackground(fn func(ctx context.Context)) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn(c.ctx)
	}()
}

// commit renames a reduce attempt's output into place. The rename fails
// when the final name exists, which is what makes a partition appear once
// even when two attempts race to commit (paper section 3.3: the file
// system's atomic rename is the only commit point).
func (c *Coordinator) commit(ctx context.Context, cm tasktable.Commit) {
	c.mu.Lock()
	m := c.jobs[cm.Attempt.Task.Job]
	c.mu.Unlock()
	if m == nil {
		return
	}
	final := path.Join(m.rec.Output, partName(cm.Attempt.Task.Index))
	err := c.opts.FS.Rename(ctx, cm.Temp, final)
	if err == nil {
		c.mu.Lock()
		cnt := m.reduceCounters[cm.Attempt]
		delete(m.reduceCounters, cm.Attempt)
		c.mu.Unlock()
		err = c.append(entry{Type: "commit", Job: m.rec.ID, Partition: cm.Attempt.Task.Index, Counters: cnt})
	}
	if ctx.Err() != nil {
		return // closing: the journal and the part files tell a restart
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		m.committed[cm.Attempt.Task.Index] = true
	} else {
		c.log.Warn("commit failed", "attempt", cm.Attempt, "err", err)
	}
	d, terr := c.table.CommitResult(c.opts.Now(), cm.Attempt, err)
	if terr == nil {
		c.apply(d)
	}
}

func (c *Coordinator) discard(ctx context.Context, temp string) {
	if temp == "" {
		return
	}
	if err := c.opts.FS.Delete(ctx, temp, false); err != nil && !errors.Is(err, client.ErrNotFound) {
		c.log.Debug("discard", "temp", temp, "err", err)
	}
}

// finish finalises a job the table ended: a succeeded job gets _SUCCESS
// and loses its _temporary directory; a failed one loses its whole output
// directory, so nothing half-written stays visible.
func (c *Coordinator) finish(ctx context.Context, m *jobMeta, f tasktable.JobResult) {
	out := m.rec.Output
	var err error
	state := f.State
	if state == tasktable.Succeeded {
		_ = c.opts.FS.Delete(ctx, path.Join(out, tempDirName), true)
		err = c.opts.FS.Create(ctx, path.Join(out, successName), client.CreateOptions{})
		if errors.Is(err, client.ErrExists) {
			err = nil
		}
	} else {
		err = c.opts.FS.Delete(ctx, out, true)
		if errors.Is(err, client.ErrNotFound) {
			err = nil
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		c.log.Error("finalising job output", "job", m.rec.ID, "err", err)
		if state == tasktable.Succeeded {
			state = tasktable.Failed
			m.err = fmt.Sprintf("writing %s: %v", path.Join(out, successName), err)
		}
	}
	now := c.opts.Now()
	c.mu.Lock()
	m.state, m.ended = state, now
	c.mu.Unlock()
	if jerr := c.append(entry{Type: "end", Job: m.rec.ID, State: state.String(), Error: m.err, Counters: m.counters, EndedMs: now.UnixMilli()}); jerr != nil {
		c.log.Error("journal", "err", jerr)
	}
	c.mu.Lock()
	for _, w := range c.workers {
		w.endedJobs = append(w.endedJobs, string(m.rec.ID))
	}
	_ = c.table.Forget(m.rec.ID)
	c.mu.Unlock()
	c.log.Info("job ended", "job", m.rec.ID, "state", state, "err", m.err)
}

// assignment turns a table assignment into the message a worker gets.
func (c *Coordinator) assignment(m *jobMeta, a tasktable.Assignment) *mrpb.Assignment {
	pb := &mrpb.Assignment{Attempt: attemptPB(a.Attempt), App: m.rec.App, Conf: m.rec.Conf,
		InputFormat: m.rec.Format, Reduces: int32(m.rec.Reduces), Backup: a.Backup, ChunkSize: m.rec.ChunkSize}
	if a.Attempt.Task.Kind == tasktable.Map {
		s := m.rec.Splits[a.Attempt.Task.Index]
		pb.Path, pb.Offset, pb.Length, pb.FileSize = s.Path, s.Offset, s.Length, s.FileSize
	} else {
		// The incarnation keeps names unique across coordinator restarts
		// (attempt numbers start over with a fresh table).
		pb.Temp = path.Join(m.rec.Output, tempDirName,
			fmt.Sprintf("%s.%d-%d", partName(a.Attempt.Task.Index), c.incarnation, a.Attempt.Attempt))
	}
	return pb
}

// Output layout of a job.
const (
	tempDirName = "_temporary"
	successName = "_SUCCESS"
)

// partName is the file name of partition p ("part-r-00003").
func partName(p int) string { return fmt.Sprintf("part-r-%05d", p) }

// submit starts a job. The GFS work (input expansion, output directory,
// the app's Prepare) runs outside the lock.
func (c *Coordinator) submit(ctx context.Context, req *mrpb.SubmitRequest) (*mrpb.SubmitResponse, error) {
	reqID := hex.EncodeToString(req.GetRequestId())
	c.mu.Lock()
	if id, ok := c.reqs[reqID]; ok && reqID != "" {
		m := c.jobs[id]
		c.mu.Unlock()
		return &mrpb.SubmitResponse{Job: string(id), Maps: int32(len(m.rec.Splits))}, nil
	}
	slots := 0
	for _, w := range c.workers {
		slots += w.info.Slots
	}
	c.mu.Unlock()

	format, err := ParseInputFormat(req.GetInputFormat())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	conf := Config{}
	for k, v := range req.GetConf() {
		conf[k] = v
	}
	job, err := c.opts.Apps.Build(req.GetApp(), conf)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if format == TextInput {
		format = job.Input
	}
	out := req.GetOutput()
	if out == "" || !strings.HasPrefix(out, "/") || path.Clean(out) != out || out == "/" {
		return nil, status.Errorf(codes.InvalidArgument, "output %q: want an absolute, clean path other than /", out)
	}
	if len(req.GetInputs()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no input paths")
	}
	reduces := int(req.GetReduces())
	switch {
	case reduces < 0 || reduces > 100000:
		return nil, status.Errorf(codes.InvalidArgument, "%d reduce tasks: want 1..100000", reduces)
	case reduces == 0:
		reduces = max(1, slots)
	}
	files, err := c.expandInputs(ctx, req.GetInputs(), out)
	if err != nil {
		return nil, err
	}
	if _, err := c.opts.FS.Stat(ctx, out); err == nil {
		return nil, status.Errorf(codes.AlreadyExists, "output %s exists: remove it or pick another", out)
	}
	in := &gfsInput{fs: c.opts.FS, files: files}
	if job.Prepare != nil {
		if err := job.Prepare(ctx, in, reduces, conf); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "app %s: prepare: %v", req.GetApp(), err)
		}
	}
	var splits []splitRecord
	var chunkSize int64
	for _, f := range files {
		cs, err := c.opts.FS.ChunkSize(ctx, f.Path)
		if err != nil {
			return nil, gfsStatus(err, "input "+f.Path)
		}
		chunkSize = cs
		for off := int64(0); off < f.Size; off += cs {
			splits = append(splits, splitRecord{Path: f.Path, Offset: off, Length: min(cs, f.Size-off), FileSize: f.Size})
		}
	}
	if parent := path.Dir(out); parent != "/" {
		if err := c.opts.FS.Mkdir(ctx, parent, true); err != nil && !errors.Is(err, client.ErrExists) {
			return nil, gfsStatus(err, "output parent "+parent)
		}
	}
	// Mkdir of OUT itself without parents is the fence against two jobs
	// racing for one output directory.
	if err := c.opts.FS.Mkdir(ctx, out, false); err != nil {
		if errors.Is(err, client.ErrExists) {
			return nil, status.Errorf(codes.AlreadyExists, "output %s exists: remove it or pick another", out)
		}
		return nil, gfsStatus(err, "output "+out)
	}
	if err := c.opts.FS.Mkdir(ctx, path.Join(out, tempDirName), false); err != nil {
		return nil, gfsStatus(err, "output "+out)
	}
	inputs := make([]string, len(files))
	for i, f := range files {
		inputs[i] = f.Path
	}
	located := c.locateSplits(ctx, splits, chunkSize)
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, status.Error(codes.Unavailable, "coordinator closing")
	}
	c.nextJob++
	rec := jobRecord{ID: tasktable.JobID(fmt.Sprintf("job-%04d", c.nextJob)), App: req.GetApp(), Conf: conf,
		Inputs: inputs, Output: out, Reduces: reduces, Format: format.String(), Splits: splits,
		SubmittedMs: now.UnixMilli(), RequestID: reqID, ChunkSize: chunkSize, User: req.GetUser()}
	if err := c.append(entry{Type: "job", JobRec: &rec}); err != nil {
		c.nextJob--
		return nil, status.Errorf(codes.Internal, "journal: %v", err)
	}
	spec := tasktable.JobSpec{ID: rec.ID, Reduces: reduces, Splits: located}
	if err := c.table.Submit(now, spec); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	m := &jobMeta{rec: rec, state: tasktable.Running, committed: map[int]bool{}, reduceCounters: map[tasktable.AttemptID]tasktable.Counters{}}
	c.jobs[rec.ID] = m
	c.order = append(c.order, rec.ID)
	if reqID != "" {
		c.reqs[reqID] = rec.ID
	}
	if len(splits) == 0 {
		// No input bytes: every reduce task still runs (and writes an empty
		// part file), as Hadoop does.
		c.log.Info("job has no input bytes", "job", rec.ID)
	}
	c.log.Info("job submitted", "job", rec.ID, "app", rec.App, "maps", len(splits), "reduces", reduces, "output", out)
	return &mrpb.SubmitResponse{Job: string(rec.ID), Maps: int32(len(splits))}, nil
}

// expandInputs turns input paths into files: a directory means every file
// under it, names starting with "_" or "." skipped (Hadoop's hidden-file
// rule, which also keeps a job from reading another job's _temporary).
func (c *Coordinator) expandInputs(ctx context.Context, paths []string, out string) ([]InputFile, error) {
	var files []InputFile
	seen := map[string]bool{}
	var walk func(p string, top bool) error
	walk = func(p string, top bool) error {
		fi, err := c.opts.FS.Stat(ctx, p)
		if err != nil {
			return gfsStatus(err, "input "+p)
		}
		if p == out || strings.HasPrefix(p, out+"/") {
			return status.Errorf(codes.InvalidArgument, "input %s is inside the output %s", p, out)
		}
		if !fi.IsDir {
			if !seen[p] {
				seen[p] = true
				f, err := c.opts.FS.Open(ctx, p)
				if err != nil {
					return gfsStatus(err, "input "+p)
				}
				size, err := f.Length(ctx)
				if err != nil {
					return gfsStatus(err, "input "+p)
				}
				files = append(files, InputFile{Path: p, Size: size})
			}
			return nil
		}
		infos, err := c.opts.FS.List(ctx, p)
		if err != nil {
			return gfsStatus(err, "input "+p)
		}
		sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
		for _, e := range infos {
			if strings.HasPrefix(e.Name, "_") || strings.HasPrefix(e.Name, ".") {
				continue
			}
			if err := walk(path.Join(p, e.Name), false); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		if p == "" || !strings.HasPrefix(p, "/") {
			return nil, status.Errorf(codes.InvalidArgument, "input %q: want an absolute path", p)
		}
		if err := walk(path.Clean(p), true); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// locateSplits adds each split's replica addresses (for locality): split
// offsets are multiples of chunkSize, so a split is chunk offset/chunkSize.
// A split whose lookup fails simply has none.
func (c *Coordinator) locateSplits(ctx context.Context, splits []splitRecord, chunkSize int64) []tasktable.Split {
	out := make([]tasktable.Split, len(splits))
	locs := map[string]map[int64][]string{}
	for i, s := range splits {
		out[i] = tasktable.Split{Path: s.Path, Offset: s.Offset, Length: s.Length}
		byIndex, ok := locs[s.Path]
		if !ok {
			byIndex = map[int64][]string{}
			if l, err := c.opts.FS.Chunks(ctx, s.Path); err == nil {
				for _, loc := range l {
					byIndex[loc.Index] = loc.Replicas
				}
			}
			locs[s.Path] = byIndex
		}
		if chunkSize > 0 {
			out[i].Replicas = append([]string(nil), byIndex[s.Offset/chunkSize]...)
		}
	}
	return out
}

func (c *Coordinator) append(e entry) error {
	b, err := e.marshal()
	if err != nil {
		return err
	}
	return c.jrnl.Append(b)
}

// gfsStatus maps a GFS client error to a gRPC status naming what.
func gfsStatus(err error, what string) error {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return status.Errorf(codes.NotFound, "%s: not found", what)
	case errors.Is(err, client.ErrExists):
		return status.Errorf(codes.AlreadyExists, "%s: exists", what)
	case errors.Is(err, client.ErrNotDir):
		return status.Errorf(codes.InvalidArgument, "%s: not a directory", what)
	}
	return status.Errorf(codes.Unavailable, "%s: %v", what, err)
}

// gfsInput is the InputReader a Prepare function gets.
type gfsInput struct {
	fs    *client.Client
	files []InputFile
	mu    sync.Mutex
	open  map[string]*client.File
}

func (g *gfsInput) Files() []InputFile { return g.files }

func (g *gfsInput) ReadAt(ctx context.Context, p string, b []byte, off int64) (int, error) {
	g.mu.Lock()
	f, ok := g.open[p]
	g.mu.Unlock()
	if !ok {
		var err error
		if f, err = g.fs.Open(ctx, p); err != nil {
			return 0, err
		}
		g.mu.Lock()
		if g.open == nil {
			g.open = map[string]*client.File{}
		}
		g.open[p] = f
		g.mu.Unlock()
	}
	return f.ReadAtContext(ctx, b, off)
}

func newRequestID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}
