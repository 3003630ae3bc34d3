package mapreduce

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/dirlock"
	"github.com/gfs-go/gfs/mapreduce/mrpb"
	"github.com/gfs-go/gfs/mapreduce/shuffle"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// WorkerOptions configure a Worker. Zero values mean the defaults given.
type WorkerOptions struct {
	// Coordinator is the coordinator's HOST:PORT (required).
	Coordinator string
	// Dir is the worker's local scratch directory (required): map output
	// and fetched shuffle runs live there. It is locked while the worker
	// runs and emptied at start (output of an earlier life is useless: its
	// attempts were lost with it).
	Dir string
	// FS is the worker's GFS client (required): input reads, output writes.
	FS *client.Client
	// Apps are the apps the worker can run (required).
	Apps Apps
	// Slots is how many attempts run at once (runtime.NumCPU()).
	Slots int
	// Chunkserver is the data address of the chunkserver on this machine,
	// so that the coordinator can place map tasks beside their input.
	Chunkserver string
	// Rack of this machine ("" unknown).
	Rack string
	// Addr is the shuffle listener's address ("" = port 0 on the
	// Chunkserver's host, else on 127.0.0.1). Reducers on other machines
	// connect to it, so on a real cluster it names a routable host.
	Addr string
	// TLS: mutual TLS to the coordinator and on the shuffle (a worker
	// certificate). Zero = plaintext.
	TLS tlsconfig.Files
	// SortBufferBytes bounds a map attempt's in-memory output before it
	// spills (64 MiB).
	SortBufferBytes int
	// ShuffleTimeout bounds how long a fetch of map output waits for the
	// serving worker to answer or to send more bytes (60 s); a worker that
	// hangs without dying (stopped, swapping) then costs a fetch failure,
	// and the map runs again elsewhere, instead of stalling the reducer.
	ShuffleTimeout time.Duration
	// Logger receives events; nil discards.
	Logger *slog.Logger
}

// Worker runs map and reduce attempts for a coordinator (paper section
// 3.1): it heartbeats, starts what the replies assign, serves its
// completed map output to reducers and reports outcomes.
type Worker struct {
	opts    WorkerOptions
	log     *slog.Logger
	lock    *dirlock.Lock
	lis     net.Listener
	shuffle string // advertised HOST:PORT
	httpSrv *http.Server
	fetch   *http.Client
	scheme  string
	cc      *grpc.ClientConn
	coord   mrpb.CoordinatorClient

	// wake makes the heartbeat loop send its next heartbeat at once: an
	// attempt ended, so a slot is free and the coordinator may have more.
	wake chan struct{}

	mu       sync.Mutex // guards the fields below
	id       string
	running  map[tasktable.AttemptID]*runningAttempt
	outputs  map[mapKey]string // completed map attempts -> output dir
	attempts sync.WaitGroup
}

type mapKey struct {
	job     string
	index   int
	attempt int
}

type runningAttempt struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewWorker locks and empties the scratch directory and opens the shuffle
// listener.
func NewWorker(opts WorkerOptions) (*Worker, error) {
	if opts.Coordinator == "" || opts.Dir == "" || opts.FS == nil || opts.Apps == nil {
		return nil, errors.New("mapreduce: WorkerOptions needs Coordinator, Dir, FS and Apps")
	}
	if opts.Slots <= 0 {
		opts.Slots = runtime.NumCPU()
	}
	if opts.SortBufferBytes <= 0 {
		opts.SortBufferBytes = 64 << 20
	}
	if opts.ShuffleTimeout <= 0 {
		opts.ShuffleTimeout = time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := dirlock.Acquire(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{opts: opts, log: log, lock: lock, scheme: "http", wake: make(chan struct{}, 1),
		running: map[tasktable.AttemptID]*runningAttempt{}, outputs: map[mapKey]string{}}
	if err := os.RemoveAll(w.jobsDir()); err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: empty %s: %w", w.jobsDir(), err)
	}
	if err := w.listen(); err != nil {
		lock.Release()
		return nil, err
	}
	return w, nil
}

func (w *Worker) jobsDir() string { return filepath.Join(w.opts.Dir, "jobs") }

// listen opens the shuffle listener and the coordinator connection.
func (w *Worker) listen() error {
	addr := w.opts.Addr
	if addr == "" {
		host := "127.0.0.1"
		if h, _, err := net.SplitHostPort(w.opts.Chunkserver); err == nil && h != "" {
			host = h
		}
		addr = net.JoinHostPort(host, "0")
	}
	srvTLS, err := tlsconfig.Server(w.opts.TLS)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cliTLS, err := tlsconfig.Client(w.opts.TLS)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("worker: shuffle listener: %w", err)
	}
	w.lis = lis
	w.shuffle = lis.Addr().String()
	handler := shuffle.NewHandler(w.locate, w.log)
	timeout := w.opts.ShuffleTimeout
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: timeout,
		TLSHandshakeTimeout: timeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &stallConn{Conn: c, timeout: timeout}, nil
		}}
	if srvTLS != nil {
		w.scheme = "https"
		handler = requireRole(handler, tlsconfig.RoleWorker)
		transport.TLSClientConfig = cliTLS
		w.lis = tls.NewListener(lis, srvTLS)
	}
	w.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelDebug)}
	w.fetch = &http.Client{Transport: transport}
	w.cc, err = control.Dial(w.opts.Coordinator, control.DialOptions{TLS: cliTLS})
	if err != nil {
		lis.Close()
		return fmt.Errorf("worker: %w", err)
	}
	w.coord = mrpb.NewCoordinatorClient(w.cc)
	return nil
}

// stallConn fails a read that waits longer than timeout for a byte.
type stallConn struct {
	net.Conn
	timeout time.Duration
}

func (c *stallConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	return c.Conn.Read(p)
}

// requireRole lets only peers with a role's certificate through (reducers
// fetching map output are workers).
func requireRole(h http.Handler, role tlsconfig.Role) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || tlsconfig.RoleOf(r.TLS.VerifiedChains[0][0]) != role {
			http.Error(rw, "shuffle: a worker certificate is required", http.StatusForbidden)
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// ShuffleAddr is the address reducers fetch this worker's map output from.
func (w *Worker) ShuffleAddr() string { return w.shuffle }

// locate is the shuffle handler's view of the completed map outputs.
func (w *Worker) locate(job string, index, attempt int) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dir, ok := w.outputs[mapKey{job, index, attempt}]
	return dir, ok
}

// Run serves until ctx ends: registers, heartbeats, runs attempts. It
// returns nil when ctx ends, an error when the coordinator refuses the
// worker for good (another protocol version).
func (w *Worker) Run(ctx context.Context) error {
	var serveWG sync.WaitGroup
	serveWG.Add(1)
	go func() {
		defer serveWG.Done()
		if err := w.httpSrv.Serve(w.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("shuffle server", "err", err)
		}
	}()
	err := w.loop(ctx)
	w.stopAll()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = w.httpSrv.Shutdown(sctx)
	cancel()
	serveWG.Wait()
	w.cc.Close()
	w.fetch.CloseIdleConnections()
	if rerr := w.lock.Release(); err == nil && rerr != nil {
		err = rerr
	}
	return err
}

// loop registers and heartbeats until ctx ends.
func (w *Worker) loop(ctx context.Context) error {
	interval := time.Second
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if w.workerID() == "" {
			resp, err := w.coord.Register(ctx, &mrpb.RegisterRequest{Protocol: ProtocolVersion, Slots: int32(w.opts.Slots),
				Chunkserver: w.opts.Chunkserver, Rack: w.opts.Rack, ShuffleAddr: w.shuffle, Host: hostname()})
			if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.InvalidArgument {
				return fmt.Errorf("worker: coordinator %s refused registration: %s", w.opts.Coordinator, status.Convert(err).Message())
			}
			if err != nil {
				w.log.Warn("cannot register with the coordinator; retrying", "coordinator", w.opts.Coordinator, "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if ms := resp.GetHeartbeatIntervalMs(); ms > 0 {
				interval = time.Duration(ms) * time.Millisecond
			}
			w.mu.Lock()
			w.id = resp.GetWorkerId()
			w.mu.Unlock()
			w.log.Info("registered", "worker", resp.GetWorkerId(), "coordinator", w.opts.Coordinator, "shuffle", w.shuffle)
		}
		if err := w.heartbeat(ctx); err != nil {
			if status.Code(err) == codes.NotFound {
				// The coordinator restarted or declared us dead: everything
				// we run or hold belongs to attempts it forgot.
				w.log.Warn("coordinator forgot this worker; registering again", "err", status.Convert(err).Message())
				w.stopAll()
				w.mu.Lock()
				w.id = ""
				w.mu.Unlock()
				continue
			}
			if ctx.Err() == nil {
				w.log.Warn("heartbeat failed", "err", err)
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-w.wake:
		}
		t.Stop()
	}
	return nil
}

func (w *Worker) workerID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.id
}

func (w *Worker) heartbeat(ctx context.Context) error {
	w.mu.Lock()
	req := &mrpb.HeartbeatRequest{WorkerId: w.id}
	for id := range w.running {
		req.Running = append(req.Running, attemptPB(id))
	}
	w.mu.Unlock()
	var st unix.Statfs_t
	if unix.Statfs(w.opts.Dir, &st) == nil {
		req.ScratchFreeBytes = int64(st.Bavail) * st.Bsize
	}
	resp, err := w.coord.Heartbeat(ctx, req)
	if err != nil {
		return err
	}
	for _, k := range resp.GetKill() {
		if id, err := attemptFromPB(k); err == nil {
			w.kill(id)
		}
	}
	for _, job := range resp.GetEndedJobs() {
		w.dropJob(job)
	}
	for _, a := range resp.GetRun() {
		w.start(ctx, a)
	}
	return nil
}

// start runs an assignment in its own goroutine, owned by w.attempts.
func (w *Worker) start(ctx context.Context, a *mrpb.Assignment) {
	id, err := attemptFromPB(a.GetAttempt())
	if err != nil {
		return
	}
	w.mu.Lock()
	if _, dup := w.running[id]; dup {
		w.mu.Unlock()
		return
	}
	actx, cancel := context.WithCancel(ctx)
	ra := &runningAttempt{cancel: cancel, done: make(chan struct{})}
	w.running[id] = ra
	wid := w.id
	w.attempts.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.attempts.Done()
		defer close(ra.done)
		defer cancel()
		w.run(actx, wid, id, a)
		w.mu.Lock()
		if w.running[id] == ra {
			delete(w.running, id)
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}()
}

// run executes one attempt and reports its outcome.
func (w *Worker) run(ctx context.Context, wid string, id tasktable.AttemptID, a *mrpb.Assignment) {
	w.log.Debug("attempt starting", "attempt", id, "backup", a.GetBackup())
	var err error
	var cnt tasktable.Counters
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		if id.Task.Kind == tasktable.Map {
			cnt, err = w.runMap(ctx, id, a)
		} else {
			cnt, err = w.runReduce(ctx, wid, id, a)
		}
	}()
	if ctx.Err() != nil {
		w.dropOutput(id)
		return // killed: the coordinator already knows
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	switch {
	case err != nil:
		w.dropOutput(id)
		w.log.Warn("attempt failed", "attempt", id, "err", err)
		_, rerr := w.coord.ReportFailure(rctx, &mrpb.ReportFailureRequest{WorkerId: wid, Attempt: attemptPB(id), Reason: err.Error()})
		if rerr != nil {
			w.log.Debug("report failure", "attempt", id, "err", rerr)
		}
	case id.Task.Kind == tasktable.Map:
		_, rerr := w.coord.ReportMap(rctx, &mrpb.ReportMapRequest{WorkerId: wid, Attempt: attemptPB(id), Counters: countersPB(cnt)})
		if rerr != nil {
			// Not used (stale, or the coordinator is gone): the output would
			// never be fetched.
			w.log.Debug("report map", "attempt", id, "err", rerr)
			w.dropOutput(id)
		}
	default:
		_, rerr := w.coord.ReportReduce(rctx, &mrpb.ReportReduceRequest{WorkerId: wid, Attempt: attemptPB(id), Temp: a.GetTemp(), Counters: countersPB(cnt)})
		if rerr != nil {
			w.log.Debug("report reduce", "attempt", id, "err", rerr)
		}
		w.dropOutput(id)
	}
}

// kill stops a running attempt, or drops a completed map attempt's output.
func (w *Worker) kill(id tasktable.AttemptID) {
	w.mu.Lock()
	ra := w.running[id]
	w.mu.Unlock()
	if ra != nil {
		ra.cancel()
		<-ra.done
		return
	}
	w.dropOutput(id)
}

// dropOutput removes an attempt's local files.
func (w *Worker) dropOutput(id tasktable.AttemptID) {
	w.mu.Lock()
	delete(w.outputs, mapKey{string(id.Task.Job), id.Task.Index, id.Attempt})
	w.mu.Unlock()
	_ = os.RemoveAll(w.attemptDir(id))
}

// dropJob removes every local file of an ended job.
func (w *Worker) dropJob(job string) {
	if !validName(job) {
		return
	}
	w.mu.Lock()
	for k := range w.outputs {
		if k.job == job {
			delete(w.outputs, k)
		}
	}
	w.mu.Unlock()
	_ = os.RemoveAll(filepath.Join(w.jobsDir(), job))
}

// stopAll cancels every running attempt, waits for them, and drops all
// local output.
func (w *Worker) stopAll() {
	w.mu.Lock()
	for _, ra := range w.running {
		ra.cancel()
	}
	w.mu.Unlock()
	w.attempts.Wait()
	w.mu.Lock()
	w.outputs = map[mapKey]string{}
	w.mu.Unlock()
	_ = os.RemoveAll(w.jobsDir())
}

// attemptDir is DIR/jobs/JOB/m00003.1 (or r...).
func (w *Worker) attemptDir(id tasktable.AttemptID) string {
	kind := "m"
	if id.Task.Kind == tasktable.Reduce {
		kind = "r"
	}
	job := string(id.Task.Job)
	if !validName(job) {
		job = "_invalid"
	}
	return filepath.Join(w.jobsDir(), job, fmt.Sprintf("%s%05d.%d", kind, id.Task.Index, id.Attempt))
}

// validName: job ids become directory names; refuse anything that could
// leave the scratch directory.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
