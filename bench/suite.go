package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"slices"
	"time"
)

// Defaults of Options' zero values.
const (
	DefaultClients          = 4
	DefaultSizeBytes        = 256 << 20
	DefaultRecordBytes      = 4 << 10
	DefaultAppendWindow     = 16
	DefaultDuration         = 5 * time.Second
	DefaultBaselineDuration = 1500 * time.Millisecond
	DefaultRuns             = 3
	DefaultChunkservers     = 3
	DefaultReplication      = 3
)

// ErrBadOptions wraps every invalid option.
var ErrBadOptions = errors.New("bench: bad options")

// Target is a running GFS cluster the workloads talk to.
type Target struct {
	MasterAddr string
	// Close stops an embedded cluster; nil for an existing one.
	Close func() error
	// StartMR starts a MapReduce coordinator and workers on the cluster,
	// their directories under dir, for the MapReduce workloads; nil = no
	// MapReduce (they are then skipped with a note).
	StartMR func(ctx context.Context, dir string) (*MRCluster, error)
}

// ClusterOptions is what an embedded cluster is started with.
type ClusterOptions struct {
	Dir            string
	Chunkservers   int
	ChunkSizeBytes int64 // 0 = the master's default
	Replication    int
	LeaseTTL       time.Duration // 0 = the master's default
	Logger         *slog.Logger
}

// Options configures a run. The zero value runs the default suite against an
// embedded cluster once Connect and StartCluster are set (NewClientOptions
// fills them with the real client and cluster).
type Options struct {
	// Workloads to run, any of AllWorkloads; nil = all of Workloads (the
	// MapReduce workloads are opt-in). Unknown names are an error.
	Workloads []string
	// Clients is the number of concurrent clients; 0 = DefaultClients.
	Clients int
	// SizeBytes is each client's file for seqwrite/seqread/randread;
	// 0 = DefaultSizeBytes; at least 1 MiB.
	SizeBytes int64
	// RecordBytes is the append record size; 0 = DefaultRecordBytes; at least 16.
	// It is also the rpc baseline's request size.
	RecordBytes int
	// AppendWindow is the records each appendstream client keeps in
	// flight; 0 = DefaultAppendWindow.
	AppendWindow int
	// Duration of each timed workload (randread, append, appendstream,
	// metadata); 0 = DefaultDuration.
	Duration time.Duration
	// BaselineDuration of each baseline measurement (serve and odirect measure
	// two things each, sendfile and read()+write(), write and read);
	// 0 = DefaultBaselineDuration.
	BaselineDuration time.Duration
	// NoBaselines skips the baselines (ratios are then 0, with a note).
	NoBaselines bool
	// MRInputBytes is the input of each MapReduce workload (wordcount,
	// sort); 0 = DefaultMRInputBytes; at least 1 MiB.
	MRInputBytes int64
	// Runs repeats everything; figures are medians; 0 = DefaultRuns. A shared
	// machine's noise easily moves one run by tens of percent: the spread
	// says how much.
	Runs int
	// MasterAddr targets an existing cluster; "" = start an embedded one.
	MasterAddr string
	// Dir is where the run's temporary directory (embedded cluster data and
	// baseline files) is made; "" = os.TempDir().
	Dir string
	// ChunkSizeBytes, Chunkservers and Replication configure the embedded
	// cluster; 0 = the defaults (64 MiB chunks, 3 chunkservers, replication 3).
	ChunkSizeBytes int64
	Chunkservers   int
	Replication    int
	// LeaseTTL of the embedded cluster; 0 = the master's default (60 s).
	// A master grants no lease for one TTL after it starts (leases of an
	// earlier incarnation may still run), which the warm-up waits out.
	LeaseTTL time.Duration
	// Seed drives the data pattern and random offsets; 0 = random.
	Seed uint64
	// CPUProfile, when set, writes a CPU profile of each workload's measured
	// phase (first run only) to CPUProfile + "." + workload.
	CPUProfile string
	// RelayCommand starts relay baseline hops in child processes; nil skips
	// the relay baseline with a note.
	RelayCommand RelayCommand
	// Connect opens one client of the cluster at masterAddr. Required.
	Connect func(ctx context.Context, masterAddr string) (FS, error)
	// StartCluster starts an embedded cluster; required unless MasterAddr is set.
	StartCluster func(ctx context.Context, opts ClusterOptions) (Target, error)
	// Progress receives the progress lines (stderr); nil = silent.
	Progress io.Writer
	// Logger for the embedded cluster; nil = discard.
	Logger *slog.Logger
}

// withDefaults validates o and fills in its zero values.
func (o Options) withDefaults() (Options, error) {
	if o.Clients == 0 {
		o.Clients = DefaultClients
	}
	if o.SizeBytes == 0 {
		o.SizeBytes = DefaultSizeBytes
	}
	if o.RecordBytes == 0 {
		o.RecordBytes = DefaultRecordBytes
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.AppendWindow == 0 {
		o.AppendWindow = DefaultAppendWindow
	}
	if o.BaselineDuration == 0 {
		o.BaselineDuration = DefaultBaselineDuration
	}
	if o.Runs == 0 {
		o.Runs = DefaultRuns
	}
	if o.MRInputBytes == 0 {
		o.MRInputBytes = DefaultMRInputBytes
	}
	if o.Chunkservers == 0 {
		o.Chunkservers = DefaultChunkservers
	}
	if o.Replication == 0 {
		o.Replication = DefaultReplication
	}
	if o.Dir == "" {
		o.Dir = os.TempDir()
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64() | 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Workloads) == 0 {
		o.Workloads = Workloads
	}
	switch {
	case o.Clients < 1 || o.Clients > 4096:
		return o, fmt.Errorf("%w: clients %d (want 1..4096)", ErrBadOptions, o.Clients)
	case o.MRInputBytes < ioBytes:
		return o, fmt.Errorf("%w: MapReduce input %d bytes (want at least %d)", ErrBadOptions, o.MRInputBytes, ioBytes)
	case o.SizeBytes < ioBytes:
		return o, fmt.Errorf("%w: size %d bytes (want at least %d)", ErrBadOptions, o.SizeBytes, ioBytes)
	case o.RecordBytes < appendHeaderBytes || o.RecordBytes > 64<<20:
		return o, fmt.Errorf("%w: record size %d bytes (want %d..%d)", ErrBadOptions, o.RecordBytes, appendHeaderBytes, 64<<20)
	case o.Duration < 0 || o.BaselineDuration < 0 || o.LeaseTTL < 0:
		return o, fmt.Errorf("%w: negative duration", ErrBadOptions)
	case o.AppendWindow < 1 || o.AppendWindow > 4096:
		return o, fmt.Errorf("%w: append window %d (want 1..4096)", ErrBadOptions, o.AppendWindow)
	case o.Runs < 1 || o.Runs > 100:
		return o, fmt.Errorf("%w: runs %d (want 1..100)", ErrBadOptions, o.Runs)
	case o.Chunkservers < 1 || o.Replication < 1 || o.ChunkSizeBytes < 0:
		return o, fmt.Errorf("%w: chunkservers %d, replication %d, chunk size %d", ErrBadOptions, o.Chunkservers, o.Replication, o.ChunkSizeBytes)
	case o.Connect == nil:
		return o, fmt.Errorf("%w: no Connect", ErrBadOptions)
	case o.MasterAddr == "" && o.StartCluster == nil:
		return o, fmt.Errorf("%w: no StartCluster and no master address", ErrBadOptions)
	}
	if o.MasterAddr == "" {
		// A record append carries at most a quarter chunk (GFS 3.3), framing included.
		chunk := o.ChunkSizeBytes
		if chunk == 0 {
			chunk = 64 << 20
		}
		if limit := chunk/4 - recordFramingBytes; int64(o.RecordBytes) > limit {
			return o, fmt.Errorf("%w: record size %d bytes exceeds a quarter chunk less framing (%d bytes with %d-byte chunks)", ErrBadOptions, o.RecordBytes, limit, chunk)
		}
	}
	for _, w := range o.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			return o, fmt.Errorf("%w: unknown workload %q (want some of %v)", ErrBadOptions, w, AllWorkloads)
		}
	}
	if info, err := os.Stat(o.Dir); err != nil || !info.IsDir() {
		return o, fmt.Errorf("%w: dir %q is not a directory", ErrBadOptions, o.Dir)
	}
	return o, nil
}

// Run runs the baselines and the workloads Runs times and returns the
// medians. A failed verification fails the run with ErrVerify.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	defer func() {
		// Interrupted: the errors of the parts that were cut short say nothing.
		if err != nil && ctx.Err() != nil {
			rep, err = nil, fmt.Errorf("bench: interrupted: %w", ctx.Err())
		}
	}()
	prog := newProgress(o.Progress)
	root, err := os.MkdirTemp(o.Dir, "gfs-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(root)) }()
	absDir, _ := filepath.Abs(o.Dir)
	rep = &Report{
		Machine: DescribeMachine(absDir),
		Config: Config{
			Revision: buildRevision(),
			Target:   "embedded", Clients: o.Clients, SizeBytes: o.SizeBytes, RecordBytes: o.RecordBytes,
			DurationS: o.Duration.Seconds(), BaselineS: o.BaselineDuration.Seconds(), Runs: o.Runs,
			ChunkSizeBytes: o.ChunkSizeBytes, Chunkservers: o.Chunkservers, Replication: o.Replication, Dir: absDir,
		},
	}

	target := Target{MasterAddr: o.MasterAddr}
	if o.MasterAddr != "" {
		rep.Config.Target = o.MasterAddr
		rep.Config.Chunkservers, rep.Config.ChunkSizeBytes = 0, 0
	} else {
		prog.note("starting embedded cluster: master + %d chunkservers", o.Chunkservers)
		target, err = o.StartCluster(ctx, ClusterOptions{
			Dir: filepath.Join(root, "cluster"), Chunkservers: o.Chunkservers,
			ChunkSizeBytes: o.ChunkSizeBytes, Replication: o.Replication, LeaseTTL: o.LeaseTTL, Logger: o.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: start cluster: %w", err)
		}
		defer func() { err = errors.Join(err, target.Close()) }()
	}

	var mr *MRCluster
	if target.StartMR != nil && slices.ContainsFunc(o.Workloads, func(w string) bool { return slices.Contains(MRWorkloads, w) }) {
		prog.note("starting MapReduce: coordinator + one worker per chunkserver")
		if mr, err = target.StartMR(ctx, filepath.Join(root, "mapreduce")); err != nil {
			return nil, fmt.Errorf("bench: start MapReduce: %w", err)
		}
		defer func() { err = errors.Join(err, mr.Close()) }()
	}

	fss := make([]FS, 0, o.Clients+1)
	defer func() {
		for _, fs := range fss {
			err = errors.Join(err, fs.Close())
		}
	}()
	for range o.Clients + 1 {
		fs, err := o.Connect(ctx, target.MasterAddr)
		if err != nil {
			return nil, fmt.Errorf("bench: connect to %s: %w", target.MasterAddr, err)
		}
		fss = append(fss, fs)
	}

	// The warm-up (one small write, read back) waits until the cluster grants
	// leases, which a freshly started master delays by a lease period; it runs
	// while the baselines measure, so that no workload's figure includes it.
	runRoot := fmt.Sprintf("/gfs-bench-%x", o.Seed)
	if o.MasterAddr != "" {
		// An existing cluster keeps nothing of a failed run either (best
		// effort: the failure may be the cluster's). Runs after the warm-up
		// has ended (defers run last-in first-out).
		defer func() {
			if err != nil {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				defer cancel()
				fss[0].Delete(cctx, runRoot)
			}
		}()
	}
	warmed := make(chan error, 1)
	go func() { warmed <- warmUp(ctx, fss[0], runRoot) }()
	warmedUp := false
	defer func() {
		if !warmedUp {
			<-warmed // Run returns early: the warm-up goroutine must end first
		}
	}()

	baselineRuns := map[string][]Baseline{}
	resultRuns := map[string][]Result{}
	for run := range o.Runs {
		label := fmt.Sprintf("[%d/%d]", run+1, o.Runs)
		if !o.NoBaselines {
			if err := measureBaselines(ctx, &o, root, label, prog, baselineRuns); err != nil {
				return nil, err
			}
		}
		if !warmedUp {
			stop := prog.start("waiting for the cluster to grant leases", &counters{})
			err := <-warmed
			stop()
			warmedUp = true
			if err != nil {
				return nil, fmt.Errorf("bench: warm-up: %w", err)
			}
		}
		env := &workloadEnv{
			fss: fss[1:], setup: fss[0], pat: NewPattern(o.Seed + uint64(run)), run: run, opts: &o, prog: prog,
			runDir: path.Join(runRoot, fmt.Sprintf("run-%d", run)), mr: mr, localDir: filepath.Join(root, "mr-local"),
		}
		if err := env.setup.Mkdir(ctx, env.runDir); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		for _, w := range AllWorkloads {
			if !slices.Contains(o.Workloads, w) {
				continue
			}
			env.label = label + " " + w
			m, err := runWorkload(ctx, env, w, run == 0 && o.CPUProfile != "", o.CPUProfile)
			if err != nil {
				return nil, fmt.Errorf("bench: workload %s (run %d): %w", w, run+1, err)
			}
			resultRuns[w] = append(resultRuns[w], m)
		}
		if err := env.setup.Delete(ctx, env.runDir); err != nil {
			return nil, fmt.Errorf("bench: clean up %s: %w", env.runDir, err)
		}
	}
	if err := fss[0].Delete(ctx, runRoot); err != nil {
		return nil, fmt.Errorf("bench: clean up %s: %w", runRoot, err)
	}
	for _, name := range []string{BaselineServe, BaselineODirect, BaselineRelay, BaselineRPC} {
		if bs := baselineRuns[name]; len(bs) > 0 {
			rep.Baselines = append(rep.Baselines, aggregateBaselines(bs))
		}
	}
	for _, w := range AllWorkloads {
		if rs := resultRuns[w]; len(rs) > 0 {
			r := aggregateResults(rs)
			attachBaseline(&r, rep.Baselines)
			rep.Results = append(rep.Results, r)
		}
	}
	return rep, nil
}

// buildRevision returns the VCS revision in the binary's build info.
func buildRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "+dirty"
	}
	return rev
}

// warmUp writes a small file under root, reads it back and deletes it.
func warmUp(ctx context.Context, fs FS, root string) error {
	if err := fs.Mkdir(ctx, root); err != nil {
		return err
	}
	p := path.Join(root, "warm-up")
	if err := fs.Create(ctx, p); err != nil {
		return err
	}
	f, err := fs.Open(ctx, p)
	if err != nil {
		return err
	}
	defer f.Close()
	pat := NewPattern(7)
	buf := make([]byte, 64<<10)
	pat.Fill(1, buf, 0)
	if err := f.WriteAt(ctx, buf, 0); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	clear(buf)
	if n, err := f.ReadAt(ctx, buf, 0); err != nil || n != len(buf) {
		return fmt.Errorf("read %s: %d bytes, %w", p, n, err)
	}
	if err := pat.Verify(p, 1, buf, 0); err != nil {
		return err
	}
	return fs.Delete(ctx, p)
}

// measureBaselines runs the baselines the selected workloads need (and
// odirect, always) once, appending to runs.
func measureBaselines(ctx context.Context, o *Options, root, label string, prog *progress, runs map[string][]Baseline) error {
	need := map[string]bool{BaselineODirect: true}
	for _, w := range o.Workloads {
		need[workloadBaseline[w]] = true
	}
	d := o.BaselineDuration
	dir := filepath.Join(root, "baselines")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	p := prog.withPrefix(label + " ")
	steps := []struct {
		name string
		run  func() (Baseline, error)
	}{
		{BaselineServe, func() (Baseline, error) { return measureServe(ctx, dir, o.Clients, d, p) }},
		{BaselineODirect, func() (Baseline, error) { return measureODirect(ctx, dir, d, p) }},
		{BaselineRelay, func() (Baseline, error) {
			if o.RelayCommand == nil {
				return Baseline{Name: BaselineRelay, Unit: UnitMiBPerS, Runs: 1, Note: "not measured: no way to start relay processes"}, nil
			}
			return measureRelay(ctx, dir, o.RelayCommand, o.Replication, o.Clients, d, p)
		}},
		{BaselineRPC, func() (Baseline, error) { return measureRPC(ctx, o.Clients, o.RecordBytes, d, p) }},
	}
	for _, s := range steps {
		if !need[s.name] {
			continue
		}
		b, err := s.run()
		if err != nil {
			return fmt.Errorf("bench: baseline %s: %w", s.name, err)
		}
		runs[s.name] = append(runs[s.name], b)
	}
	return nil
}

// runWorkload runs one workload and returns its (unaggregated) result.
func runWorkload(ctx context.Context, env *workloadEnv, w string, profile bool, profilePrefix string) (Result, error) {
	if w == WorkloadSeqRead || w == WorkloadRandRead {
		if err := env.ensureFiles(ctx); err != nil {
			return Result{}, fmt.Errorf("prepare files: %w", err)
		}
	}
	c := &counters{}
	env.profile = ""
	if profile {
		env.profile = profilePrefix + "." + w
	}
	if slices.Contains(MRWorkloads, w) {
		return env.mrWorkload(ctx, w)
	}
	var m *measurement
	var err error
	unit, recordBytes := UnitMiBPerS, int64(ioBytes)
	switch w {
	case WorkloadSeqWrite:
		m, err = env.seqWrite(ctx, c)
	case WorkloadSeqRead:
		m, err = env.seqRead(ctx, c)
	case WorkloadRandRead:
		m, err = env.randRead(ctx, c)
		recordBytes = 0 // sizes vary: 64 KiB..1 MiB
	case WorkloadAppend:
		m, err = env.appendRecords(ctx, c)
		unit, recordBytes = UnitOpsPerS, int64(env.opts.RecordBytes)
	case WorkloadStream:
		m, err = env.streamRecords(ctx, c)
		unit, recordBytes = UnitOpsPerS, int64(env.opts.RecordBytes)
	case WorkloadMetadata:
		m, err = env.metadata(ctx, c)
		unit, recordBytes = UnitOpsPerS, 0
	default:
		err = fmt.Errorf("unknown workload %q", w)
	}
	if err != nil {
		return Result{}, err
	}
	return m.result(w, len(env.fss), recordBytes, unit), nil
}
