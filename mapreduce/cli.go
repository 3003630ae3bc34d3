package mapreduce

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/tlsflag"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// Main makes a user's binary a MapReduce program: with the apps it
// registers it runs as the coordinator, a worker, or submits and follows a
// job, by its first argument (coordinator, worker, run, status), with the
// same flags as `gfs mr`. It exits the process.
//
//	func main() { mapreduce.Main(mapreduce.Apps{"mine": buildMine}) }
func Main(apps Apps) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Command(ctx, os.Args[1:], CommandIO{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, apps)
	stop()
	os.Exit(ExitCode(err, os.Stderr, "mr"))
}

// CommandIO is what Command may touch of its process.
type CommandIO struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

// UsageError is a command line that does not parse (exit status 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// JobFailedError is a job that ran and failed (exit status 1 after the
// reason is printed).
type JobFailedError struct{ Status JobStatus }

func (e *JobFailedError) Error() string {
	return fmt.Sprintf("job %s failed: %s", e.Status.ID, e.Status.Error)
}

// ExitCode prints err (unless it is nil or a usage error already
// reported) and returns the process exit status.
func ExitCode(err error, stderr io.Writer, name string) int {
	if err == nil {
		return 0
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		if ue.Msg != "" {
			fmt.Fprintf(stderr, "gfs %s: %s\n", name, ue.Msg)
		}
		return 2
	}
	fmt.Fprintf(stderr, "gfs %s: %v\n", name, err)
	return 1
}

// Command runs one MapReduce subcommand; args start with its name.
func Command(ctx context.Context, args []string, stdio CommandIO, apps Apps) error {
	if stdio.Getenv == nil {
		stdio.Getenv = func(string) string { return "" }
	}
	usage := func() {
		fmt.Fprintln(stdio.Stderr, `usage: gfs mr COMMAND [flags]

commands:
  coordinator  run the coordinator daemon (-addr -master -dir)
  worker       run a worker daemon (-coordinator -master -dir [-chunkserver] [-slots])
  run          submit a job and follow it (-app -in -out [-reduces] [-json])
  status       list jobs, or one job (status [JOB])

apps: `+strings.Join(apps.Names(), ", ")+`
Run 'gfs mr COMMAND -h' for a command's flags.`)
	}
	if len(args) == 0 {
		usage()
		return &UsageError{}
	}
	switch args[0] {
	case "coordinator":
		return cmdCoordinator(ctx, args[1:], stdio, apps)
	case "worker":
		return cmdWorker(ctx, args[1:], stdio, apps)
	case "run":
		return cmdRun(ctx, args[1:], stdio, apps)
	case "status":
		return cmdStatus(ctx, args[1:], stdio)
	case "-h", "-help", "--help", "help":
		usage()
		return nil
	}
	usage()
	return &UsageError{Msg: fmt.Sprintf("unknown command %q", args[0])}
}

func newFlags(name string, stdio CommandIO) *flag.FlagSet {
	fs := flag.NewFlagSet("gfs mr "+name, flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &UsageError{}
		}
		return &UsageError{}
	}
	if fs.NArg() > maxArgs {
		return &UsageError{Msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

// daemonFlags are what both daemons take.
type daemonFlags struct {
	master  string
	dir     string
	tls     tlsflag.Flags
	dataTLS bool
	verbose bool
}

func (d *daemonFlags) register(fs *flag.FlagSet, node string) {
	fs.StringVar(&d.master, "master", "", "GFS master address HOST:PORT (default $GFS_MASTER)")
	fs.StringVar(&d.dir, "dir", "", "local directory of this daemon (required)")
	d.tls.Register(fs, node, true)
	fs.BoolVar(&d.dataTLS, "data-tls", false, "encrypt the GFS data channel (when the chunkservers run -data-tls) (default $GFS_DATA_TLS)")
	fs.BoolVar(&d.verbose, "v", false, "log at debug level")
}

// dialGFS connects to the GFS master with the daemon's credentials.
func (d *daemonFlags) dialGFS(ctx context.Context, stdio CommandIO, files tlsconfig.Files) (*client.Client, error) {
	master := d.master
	if master == "" {
		master = stdio.Getenv("GFS_MASTER")
	}
	if master == "" {
		return nil, &UsageError{Msg: "no master: pass -master HOST:PORT or set GFS_MASTER"}
	}
	cfg, err := tlsconfig.Client(files)
	if err != nil {
		return nil, err
	}
	dataTLS := d.dataTLS || stdio.Getenv("GFS_DATA_TLS") == "1" || stdio.Getenv("GFS_DATA_TLS") == "true"
	return client.Dial(ctx, master, client.Options{TLS: cfg, DataTLS: dataTLS && cfg != nil})
}

func (d *daemonFlags) logger(stdio CommandIO, node string) *slog.Logger {
	level := slog.LevelInfo
	if d.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: level})).With("node", node)
}

func cmdCoordinator(ctx context.Context, args []string, stdio CommandIO, apps Apps) error {
	fs := newFlags("coordinator", stdio)
	var d daemonFlags
	d.register(fs, "coordinator")
	addr := fs.String("addr", "127.0.0.1:7070", "listen address HOST:PORT for workers and submitters")
	hb := fs.Duration("heartbeat", time.Second, "heartbeat interval workers are told to use")
	timeout := fs.Duration("worker-timeout", 10*time.Second, "a worker not heard from for this long is dead: its tasks run again")
	attempts := fs.Int("max-attempts", 4, "failed attempts of one task that fail its job")
	backupMin := fs.Duration("backup-after", 5*time.Second, "no attempt younger than this gets a backup copy")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if d.dir == "" {
		return &UsageError{Msg: "-dir is required"}
	}
	files, err := d.tls.Resolve(stdio.Getenv)
	if err != nil {
		return err
	}
	gfs, err := d.dialGFS(ctx, stdio, files)
	if err != nil {
		return err
	}
	defer gfs.Close()
	log := d.logger(stdio, "coordinator")
	c, err := NewCoordinator(ctx, CoordinatorOptions{Dir: d.dir, FS: gfs, Apps: apps, TLS: files, HeartbeatInterval: *hb, Logger: log,
		Table: tasktable.Options{WorkerTimeout: *timeout, MaxAttempts: *attempts, BackupMin: *backupMin}})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		c.Close()
		return err
	}
	log.Info("coordinator serving", "addr", lis.Addr().String(), "tls", files.Enabled())
	fmt.Fprintf(stdio.Stdout, "ready coordinator=%s\n", lis.Addr())
	errc := make(chan error, 1)
	go func() { errc <- c.Serve(lis) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cerr := c.Close()
	if err == nil {
		<-errc
		err = cerr
	}
	return err
}

func cmdWorker(ctx context.Context, args []string, stdio CommandIO, apps Apps) error {
	fs := newFlags("worker", stdio)
	var d daemonFlags
	d.register(fs, "worker")
	coord := fs.String("coordinator", "", "coordinator address HOST:PORT (default $GFS_COORDINATOR)")
	var opts WorkerOptions
	fs.StringVar(&opts.Chunkserver, "chunkserver", "", "data address HOST:PORT of the chunkserver on this machine (map tasks then read their input locally)")
	fs.IntVar(&opts.Slots, "slots", 0, "attempts run at once (0 = number of CPUs)")
	fs.StringVar(&opts.Rack, "rack", "", "rack of this machine")
	fs.StringVar(&opts.Addr, "addr", "", "shuffle listen address HOST:PORT (default: port 0 on the -chunkserver host, else 127.0.0.1)")
	sortBuf := fs.String("sort-buffer", "64MiB", "memory for a map attempt's output before it spills to disk")
	fs.DurationVar(&opts.ShuffleTimeout, "shuffle-timeout", time.Minute, "a map output fetch fails when the serving worker is silent this long")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if d.dir == "" {
		return &UsageError{Msg: "-dir is required"}
	}
	opts.Coordinator = *coord
	if opts.Coordinator == "" {
		opts.Coordinator = stdio.Getenv("GFS_COORDINATOR")
	}
	if opts.Coordinator == "" {
		return &UsageError{Msg: "no coordinator: pass -coordinator HOST:PORT or set GFS_COORDINATOR"}
	}
	n, err := parseSize(*sortBuf)
	if err != nil || n < 1<<20 || n > 1<<40 {
		return &UsageError{Msg: fmt.Sprintf("-sort-buffer %q: want a size from 1MiB", *sortBuf)}
	}
	opts.SortBufferBytes = int(n)
	files, err := d.tls.Resolve(stdio.Getenv)
	if err != nil {
		return err
	}
	gfs, err := d.dialGFS(ctx, stdio, files)
	if err != nil {
		return err
	}
	defer gfs.Close()
	opts.Dir, opts.FS, opts.Apps, opts.TLS = d.dir, gfs, apps, files
	opts.Logger = d.logger(stdio, "worker")
	w, err := NewWorker(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdio.Stdout, "ready worker shuffle=%s\n", w.ShuffleAddr())
	return w.Run(ctx)
}

// kvFlag collects repeated KEY=VALUE flags.
type kvFlag map[string]string

func (k kvFlag) String() string { return "" }
func (k kvFlag) Set(s string) error {
	key, v, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	k[key] = v
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// coordinatorFlags are a submitter's -coordinator and TLS flags.
type coordinatorFlags struct {
	addr string
	tls  tlsflag.Flags
}

func (c *coordinatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "coordinator", "", "coordinator address HOST:PORT (default $GFS_COORDINATOR)")
	c.tls.Register(fs, "client", false)
}

func (c *coordinatorFlags) dial(stdio CommandIO) (*Client, error) {
	addr := c.addr
	if addr == "" {
		addr = stdio.Getenv("GFS_COORDINATOR")
	}
	if addr == "" {
		return nil, &UsageError{Msg: "no coordinator: pass -coordinator HOST:PORT or set GFS_COORDINATOR"}
	}
	files, err := c.tls.Resolve(stdio.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := tlsconfig.Client(files)
	if err != nil {
		return nil, err
	}
	return DialCoordinator(addr, cfg)
}

func cmdRun(ctx context.Context, args []string, stdio CommandIO, apps Apps) error {
	fs := newFlags("run", stdio)
	var cf coordinatorFlags
	cf.register(fs)
	app := fs.String("app", "", "app to run: "+strings.Join(apps.Names(), ", ")+" (default streaming when -mapper is given)")
	var ins listFlag
	fs.Var(&ins, "in", "input `PATH` in GFS, a file or a directory (repeatable)")
	out := fs.String("out", "", "output directory in GFS (must not exist)")
	reduces := fs.Int("reduces", 0, "reduce tasks R (0 = one per worker slot)")
	format := fs.String("input-format", "", "text (lines) or records (record-append files); default: the app's")
	pattern := fs.String("pattern", "", "regular expression (grep)")
	mapper := fs.String("mapper", "", "streaming: shell command reading input lines, writing key<TAB>value lines")
	reducer := fs.String("reducer", "", "streaming: shell command reading sorted key<TAB>value lines")
	conf := kvFlag{}
	fs.Var(conf, "conf", "app argument `KEY=VALUE` (repeatable)")
	asJSON := fs.Bool("json", false, "print the final status and counters as one JSON object")
	quiet := fs.Bool("q", false, "no progress line")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	if *pattern != "" {
		conf["pattern"] = *pattern
	}
	if *mapper != "" || *reducer != "" {
		if *mapper == "" || *reducer == "" {
			return &UsageError{Msg: "a streaming job needs both -mapper and -reducer"}
		}
		conf["mapper"], conf["reducer"] = *mapper, *reducer
		if *app == "" {
			*app = "streaming"
		}
	}
	switch {
	case *app == "":
		return &UsageError{Msg: "-app is required (" + strings.Join(apps.Names(), ", ") + ")"}
	case len(ins) == 0:
		return &UsageError{Msg: "-in is required"}
	case *out == "":
		return &UsageError{Msg: "-out is required"}
	}
	if _, ok := apps[*app]; !ok {
		return fmt.Errorf("%w %q (have %s)", ErrUnknownApp, *app, strings.Join(apps.Names(), ", "))
	}
	c, err := cf.dial(stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	u := stdio.Getenv("GFS_USER")
	if cur, err := user.Current(); u == "" && err == nil {
		u = cur.Username
	}
	id, err := c.Submit(ctx, JobRequest{App: *app, Conf: Config(conf), Inputs: ins, Output: *out, Reduces: *reduces, InputFormat: *format, User: u})
	if errors.Is(err, ErrNoCoordinator) {
		return fmt.Errorf("no coordinator at %s (-coordinator / GFS_COORDINATOR): %w", c.addr, err)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(stdio.Stderr, "gfs mr: job %s submitted\n", id)
	progress := func(s JobStatus) {
		if *quiet {
			return
		}
		fmt.Fprintf(stdio.Stderr, "\r%s: maps %d/%d  reduces %d/%d  read %s  %s ", s.ID, s.MapsDone, s.Maps, s.ReducesDone, s.Reduces,
			humanBytes(s.Counters.InputBytes), time.Since(start).Round(100*time.Millisecond))
	}
	st, werr := c.Wait(ctx, id, 500*time.Millisecond, progress)
	if !*quiet {
		fmt.Fprintln(stdio.Stderr)
	}
	if st.ID == "" {
		return werr
	}
	if *asJSON {
		enc := json.NewEncoder(stdio.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(runReport(st)); err != nil {
			return err
		}
	} else {
		printCounters(stdio.Stdout, st)
	}
	if werr != nil {
		return &JobFailedError{Status: st}
	}
	return nil
}

// runReport is what gfs mr run -json prints.
type report struct {
	Job        string             `json:"job"`
	State      string             `json:"state"`
	Error      string             `json:"error,omitempty"`
	Output     string             `json:"output"`
	WallTimeS  float64            `json:"wall_time_s"`
	MapS       float64            `json:"map_phase_s"`
	ReduceS    float64            `json:"reduce_phase_s"`
	CommitS    float64            `json:"commit_phase_s"`
	Counters   tasktable.Counters `json:"counters"`
	InputMiBps float64            `json:"input_mib_per_s"`
}

func runReport(s JobStatus) report {
	wall := s.Ended.Sub(s.Submitted).Seconds()
	r := report{Job: s.ID, State: s.State, Error: s.Error, Output: s.Output, WallTimeS: wall, Counters: s.Counters,
		MapS: s.MapPhase.Seconds(), ReduceS: s.ReducePhase.Seconds(), CommitS: s.CommitPhase.Seconds()}
	if wall > 0 {
		r.InputMiBps = float64(s.Counters.InputBytes) / (1 << 20) / wall
	}
	return r
}

func printCounters(w io.Writer, s JobStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	wall := s.Ended.Sub(s.Submitted)
	fmt.Fprintf(tw, "job\t%s (%s)\n", s.ID, s.State)
	if s.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", s.Error)
	}
	fmt.Fprintf(tw, "output\t%s\n", s.Output)
	fmt.Fprintf(tw, "wall time\t%s (map %s, reduce %s, commit %s)\n", wall.Round(time.Millisecond),
		s.MapPhase.Round(time.Millisecond), s.ReducePhase.Round(time.Millisecond), s.CommitPhase.Round(time.Millisecond))
	b, _ := json.Marshal(s.Counters)
	var m map[string]int64
	_ = json.Unmarshal(b, &m)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%d\n", k, m[k])
	}
	tw.Flush()
}

func cmdStatus(ctx context.Context, args []string, stdio CommandIO) error {
	fs := newFlags("status", stdio)
	var cf coordinatorFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args, 1); err != nil {
		return err
	}
	c, err := cf.dial(stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	sts, err := c.Status(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdio.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sts)
	}
	if fs.Arg(0) != "" && len(sts) == 1 {
		printCounters(stdio.Stdout, sts[0])
		return nil
	}
	tw := tabwriter.NewWriter(stdio.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tAPP\tMAPS\tREDUCES\tSUBMITTED\tOUTPUT")
	for _, s := range sts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t%s\n", s.ID, s.State, s.App, s.MapsDone, s.Maps, s.ReducesDone, s.Reduces,
			s.Submitted.Format(time.DateTime), s.Output)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseSize parses "1048576", "64MiB", "1GiB", "512KiB".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
