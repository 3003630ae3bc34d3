package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// Short timers shared by every scenario.
const (
	chunkSize   = 1 << 20
	leaseTTL    = 2 * time.Second
	heartbeat   = 200 * time.Millisecond
	deadAfter   = time.Second
	gcGrace     = time.Second
	retryWindow = 40 * time.Second // client RetryTimeout: covers lease expiry plus detection
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// gfsBinary builds ./tools/gfs once per test binary and returns its path.
func gfsBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "gfs-faults-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gfs")
		args := []string{"build", "-o", binPath}
		if os.Getenv("GFS_FAULTS_RACE") == "1" {
			args = append(args, "-race")
		}
		args = append(args, "github.com/gfs-go/gfs/tools/gfs")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./tools/gfs: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// skipShort skips fault scenarios in -short runs and registers the
// goroutine leak check (it runs after every other cleanup).
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault suite: starts real daemons")
	}
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

// daemon is one gfs child process that can be killed and started again
// with the same arguments.
type daemon struct {
	t       *testing.T
	name    string
	args    []string // after the binary
	prefix  []string // command run before the binary (e.g. ip netns exec NS)
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exited
	runs int
}

func newDaemon(t *testing.T, name, logDir string, args ...string) *daemon {
	d := &daemon{t: t, name: name, args: plaintextUnlessTLS(args), logPath: filepath.Join(logDir, name+".log")}
	t.Cleanup(d.kill)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("GFS_FAULTS_VERBOSE") == "1" {
			t.Logf("---- tail of %s ----\n%s", d.name, tail(d.logPath, 40))
		}
		if keep := os.Getenv("GFS_FAULTS_KEEP"); keep != "" && t.Failed() {
			if b, err := os.ReadFile(d.logPath); err == nil {
				_ = os.WriteFile(filepath.Join(keep, t.Name()+"-"+d.name+".log"), b, 0o644)
			}
		}
	})
	return d
}

// plaintextUnlessTLS makes a daemon's plaintext explicit: gfs master and
// gfs chunkserver refuse to start without TLS credentials unless
// -insecure, and the fault scenarios run plaintext (they are about
// crashes, disks and partitions, not about authentication). Arguments that
// name TLS (-tls-*) or -insecure already are kept as they are.
func plaintextUnlessTLS(args []string) []string {
	if len(args) == 0 || (args[0] != "master" && args[0] != "chunkserver") {
		return args
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-tls-") || strings.HasPrefix(a, "--tls-") || a == "-insecure" || a == "--insecure" {
			return args
		}
	}
	return append([]string{args[0], "-insecure"}, args[1:]...)
}

// start runs the daemon (it must not be running).
func (d *daemon) start() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil {
		d.t.Fatalf("%s: start while running", d.name)
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	d.runs++
	fmt.Fprintf(logf, "==== start %d: %s\n", d.runs, strings.Join(d.args, " "))
	argv := append(append([]string{}, d.prefix...), gfsBinary(d.t))
	argv = append(argv, d.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatalf("%s: %v", d.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	d.cmd, d.done = cmd, done
}

// kill sends SIGKILL and waits for the process (no-op when not running).
func (d *daemon) kill() { d.signal(syscall.SIGKILL, 0) }

// stop sends SIGTERM, waits up to 20 s for a clean exit, then kills.
func (d *daemon) stop() { d.signal(syscall.SIGTERM, 20*time.Second) }

func (d *daemon) signal(sig syscall.Signal, grace time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-d.done:
		case <-time.After(grace):
			d.t.Errorf("%s: no exit within %v of %v; killing", d.name, grace, sig)
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	} else {
		<-d.done
	}
	d.cmd, d.done = nil, nil
}

func (d *daemon) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var portMu sync.Mutex
var portsUsed = map[string]bool{}

// freeAddr returns a 127.0.0.1 address with a port free now and not handed
// out before by this test binary.
func freeAddr(t *testing.T) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		if !portsUsed[a] {
			portsUsed[a] = true
			return a
		}
	}
}

// ---------------------------------------------------------------------------
// Cluster of processes
// ---------------------------------------------------------------------------

type clusterOptions struct {
	chunkservers    int
	replication     int
	checkpointEvery int
	masterArgs      []string
	csArgs          []string
	// csDir overrides chunkserver i's directory when it returns non-"".
	csDir func(i int) string
	// masterAddr and csAddr set the listen addresses (default: free
	// 127.0.0.1 ports); masterPrefix and csPrefix are commands the daemons
	// run under (e.g. ip netns exec NS).
	masterAddr   string
	csAddr       func(i int) string
	masterPrefix []string
	csPrefix     func(i int) []string
}

// procCluster is a master and chunkservers as separate processes, each on
// a fixed address so restarts come back where clients expect them.
type procCluster struct {
	t          *testing.T
	dir        string
	masterAddr string
	master     *daemon
	cs         []*daemon
	csAddr     []string
	csDir      []string
	repl       int
}

func startCluster(t *testing.T, o clusterOptions) *procCluster {
	t.Helper()
	if o.chunkservers == 0 {
		o.chunkservers = 3
	}
	if o.replication == 0 {
		o.replication = min(3, o.chunkservers)
	}
	dir := t.TempDir()
	c := &procCluster{t: t, dir: dir, masterAddr: o.masterAddr, repl: o.replication}
	if c.masterAddr == "" {
		c.masterAddr = freeAddr(t)
	}
	margs := []string{"master", "-addr", c.masterAddr, "-dir", filepath.Join(dir, "master"),
		"-chunk-size", fmt.Sprint(chunkSize), "-replication", fmt.Sprint(o.replication),
		"-lease", leaseTTL.String(), "-heartbeat", heartbeat.String(), "-dead-after", deadAfter.String(),
		"-gc-grace", gcGrace.String()}
	if o.checkpointEvery > 0 {
		margs = append(margs, "-checkpoint-every", fmt.Sprint(o.checkpointEvery))
	}
	margs = append(margs, o.masterArgs...)
	c.master = newDaemon(t, "master", dir, margs...)
	c.master.prefix = o.masterPrefix
	c.master.start()
	for i := 0; i < o.chunkservers; i++ {
		var addr string
		if o.csAddr != nil {
			addr = o.csAddr(i)
		} else {
			addr = freeAddr(t)
		}
		d := filepath.Join(dir, fmt.Sprintf("cs%d", i))
		if o.csDir != nil {
			if od := o.csDir(i); od != "" {
				d = od
			}
		}
		// The replica check (on by default, one chunk a second) is off
		// unless a scenario turns it on through csArgs: it repairs
		// divergent replicas by itself, which scenarios looking at
		// replicas would otherwise race with.
		args := []string{"chunkserver", "-master", c.masterAddr, "-addr", addr, "-dir", d,
			"-heartbeat", heartbeat.String(), "-chunk-size", fmt.Sprint(chunkSize), "-replica-check", "0"}
		args = append(args, o.csArgs...)
		cs := newDaemon(t, fmt.Sprintf("cs%d", i), dir, args...)
		if o.csPrefix != nil {
			cs.prefix = o.csPrefix(i)
		}
		cs.start()
		c.cs = append(c.cs, cs)
		c.csAddr = append(c.csAddr, addr)
		c.csDir = append(c.csDir, d)
	}
	c.waitServers(c.liveCount(), 60*time.Second)
	return c
}

// csIndex maps a chunkserver address to its index (-1 if unknown).
func (c *procCluster) csIndex(addr string) int {
	for i, a := range c.csAddr {
		if a == addr {
			return i
		}
	}
	return -1
}

func (c *procCluster) liveCount() int {
	n := 0
	for _, d := range c.cs {
		if d.running() {
			n++
		}
	}
	return n
}

// waitServers waits until the master places a chunk on n chunkservers:
// proof that n of them registered (and the master answers).
func (c *procCluster) waitServers(n int, bound time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	cc, err := control.Dial(c.masterAddr, control.DialOptions{CallTimeout: 2 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cc.Close()
	mc := controlpb.NewMasterClient(cc)
	var last error
	for i := 0; time.Since(start) < bound; i++ {
		probe := fmt.Sprintf("/.probe-%d-%d", time.Now().UnixNano(), i)
		last = probeOnce(mc, probe, n)
		if last == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("master %s did not place a chunk on %d chunkservers within %v: %v", c.masterAddr, n, bound, last)
	return 0
}

func probeOnce(mc controlpb.MasterClient, path string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: path, Replication: uint32(n)}); err != nil {
		return err
	}
	defer mc.Delete(ctx, &controlpb.DeleteRequest{Path: path})
	resp, err := mc.Lookup(ctx, &controlpb.LookupRequest{Path: path, Count: 1, Allocate: true})
	if err != nil {
		return err
	}
	if len(resp.GetChunks()) != 1 || len(resp.GetChunks()[0].GetReplicas()) < n {
		return fmt.Errorf("probe chunk placed on %v", resp.GetChunks())
	}
	return nil
}

// dial returns a client with retry windows sized for the short timers,
// closed at cleanup.
func (c *procCluster) dial(t *testing.T) *client.Client {
	t.Helper()
	return dialMaster(t, c.masterAddr)
}

func dialMaster(t *testing.T, addr string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, addr, client.Options{
		CallTimeout:  3 * time.Second,
		DialTimeout:  2 * time.Second,
		IOTimeout:    5 * time.Second,
		RetryTimeout: retryWindow,
		LocationTTL:  2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

// waitReplication polls until every chunk of every path has at least want
// live replicas, none of them in avoid, and returns how long it took.
func waitReplication(t *testing.T, cl *client.Client, paths []string, want int, avoid []string, bound time.Duration) time.Duration {
	t.Helper()
	took, err := replicationWait(cl, paths, want, avoid, bound)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

// replicationWait is waitReplication returning the failure as an error.
func replicationWait(cl *client.Client, paths []string, want int, avoid []string, bound time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		why := replicationProblem(cl, paths, want, avoid)
		if why == "" {
			return time.Since(start), nil
		}
		if time.Since(start) > bound {
			return time.Since(start), fmt.Errorf("replication not restored within %v: %s", bound, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func replicationProblem(cl *client.Client, paths []string, want int, avoid []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range paths {
		locs, err := cl.Chunks(ctx, p)
		if err != nil {
			return fmt.Sprintf("%s: %v", p, err)
		}
		for _, l := range locs {
			if len(l.Replicas) < want {
				return fmt.Sprintf("%s chunk %d (handle %x v%d) has replicas %v, want %d", p, l.Index, l.Handle, l.Version, l.Replicas, want)
			}
			for _, r := range l.Replicas {
				for _, a := range avoid {
					if r == a {
						return fmt.Sprintf("%s chunk %d (handle %x) still lists %s", p, l.Index, l.Handle, a)
					}
				}
			}
		}
	}
	return ""
}

// readAll reads a whole file through the client.
func readAll(ctx context.Context, cl *client.Client, path string) ([]byte, error) {
	f, err := cl.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	r := f.NewReader(ctx)
	defer r.Close()
	return io.ReadAll(r)
}

// checkFile fails the test unless path reads back exactly want.
func checkFile(t *testing.T, cl *client.Client, path string, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := readAll(ctx, cl, path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		diagnoseFile(t, cl, path, want)
		t.Fatalf("read %s: %d bytes, want %d; first difference at %d", path, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// pattern returns n deterministic bytes for seed.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

// recordPayload is a self-describing record: "id|" followed by bytes that
// are a function of id, so a reader can check every record is intact.
func recordPayload(id string, n int) []byte {
	h := fnv.New64a()
	h.Write([]byte(id))
	body := pattern(h.Sum64(), n)
	return append([]byte(id+"|"), body...)
}

// ackLog records which appends were acknowledged.
type ackLog struct {
	mu    sync.Mutex
	acked map[string]int   // id -> payload body length
	off   map[string]int64 // id -> file offset RecordAppend returned (-1 unknown)
	fails []error
}

func newAckLog() *ackLog { return &ackLog{acked: map[string]int{}, off: map[string]int64{}} }

func (a *ackLog) ack(id string, n int) { a.ackAt(id, n, -1) }

// ackAt records an acknowledged append and the offset it was given.
func (a *ackLog) ackAt(id string, n int, off int64) {
	a.mu.Lock()
	a.acked[id] = n
	a.off[id] = off
	a.mu.Unlock()
}

func (a *ackLog) fail(err error) {
	a.mu.Lock()
	a.fails = append(a.fails, err)
	a.mu.Unlock()
}

func (a *ackLog) counts() (acked, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.acked), len(a.fails)
}

// verifyRecords reads path with the record reader and fails the test unless
// every acknowledged record is present exactly once and intact. It returns
// how many records the file holds (acknowledged or not).
func verifyRecords(t *testing.T, cl *client.Client, path string, a *ackLog) int {
	t.Helper()
	total, err := checkRecords(t, cl, path, a)
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// checkRecords is verifyRecords returning missing or duplicated records as
// an error (damaged records and reader failures still fail the test).
func checkRecords(t *testing.T, cl *client.Client, path string, a *ackLog) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rr := cl.NewRecordReader(ctx, path)
	defer rr.Close()
	seen := map[string]int{}
	total := 0
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("record reader %s after %d records: %v", path, total, err)
		}
		total++
		id, _, ok := bytes.Cut(rec.Data, []byte("|"))
		if !ok {
			t.Fatalf("record at %d without an id: %q", rec.Offset, trunc(rec.Data))
		}
		want := recordPayload(string(id), len(rec.Data)-len(id)-1)
		if !bytes.Equal(rec.Data, want) {
			t.Fatalf("record %s at %d is damaged (first difference at %d)", id, rec.Offset, firstDiff(rec.Data, want))
		}
		seen[string(id)]++
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var missing, dup []string
	for id, n := range a.acked {
		switch c := seen[id]; {
		case c == 0:
			missing = append(missing, id)
		case c > 1:
			dup = append(dup, id)
		}
		_ = n
	}
	for id, c := range seen {
		if c > 1 && a.acked[id] == 0 {
			dup = append(dup, id)
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		// Which chunks the missing records were acknowledged in.
		byChunk := map[int64]int{}
		for _, id := range missing {
			if o := a.off[id]; o >= 0 {
				byChunk[o/chunkSize]++
			}
		}
		t.Logf("%s: missing acknowledged records by chunk index: %v", path, byChunk)
		diagnoseRecords(t, cl, path, missing)
		return total, fmt.Errorf("%s: %d records read, %d acknowledged; %d acknowledged missing (e.g. %v), %d seen more than once (e.g. %v)",
			path, total, len(a.acked), len(missing), first(missing, 5), len(dup), first(dup, 5))
	}
	return total, nil
}

func trunc(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// appender runs record appends from one goroutine until stop is closed or
// limit appends were acknowledged (limit 0 = no limit).
func appender(ctx context.Context, cl *client.Client, path, name string, size int, limit int, a *ackLog, stop <-chan struct{}) {
	for i := 0; limit == 0 || i < limit; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("%s-%d", name, i)
		actx, cancel := context.WithTimeout(ctx, retryWindow+10*time.Second)
		off, err := cl.RecordAppend(actx, path, recordPayload(id, size))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.fail(fmt.Errorf("append %s: %w", id, err))
			continue
		}
		a.ackAt(id, size, off)
	}
}

// streamAppender is appender through a client.RecordWriter (pipelined
// appends, window 8): records are acknowledged in batches of 32 by Flush;
// when the writer stops on an error, the records since the last Flush count
// as failed (they may still appear, once) and a new writer goes on. It
// pauses 400 ms after each batch: unpaced, two of them tripled the soak's
// data, and with it the re-replication left at the end (7,000 chunk
// copies at ~43/s: over the 60 s bound).
func streamAppender(ctx context.Context, cl *client.Client, path, name string, size int, a *ackLog, stop <-chan struct{}) {
	const batch = 32
	var w *client.RecordWriter
	var pending []string
	defer func() {
		if w != nil {
			w.Close()
		}
	}()
	for i := 0; ; i++ {
		select {
		case <-stop:
			if w != nil && w.Flush() == nil {
				for _, id := range pending {
					a.ack(id, size)
				}
			}
			return
		default:
		}
		if w == nil {
			var err error
			if w, err = cl.NewRecordWriter(ctx, path, 8); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.fail(fmt.Errorf("record writer %s: %w", name, err))
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		id := fmt.Sprintf("%s-%d", name, i)
		err := w.Append(recordPayload(id, size))
		if err == nil {
			pending = append(pending, id)
			if len(pending) == batch {
				err = w.Flush()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.fail(fmt.Errorf("stream append %s: %d records unacknowledged: %w", id, len(pending), err))
			w.Close()
			w, pending = nil, nil
			continue
		}
		if len(pending) == batch {
			for _, id := range pending {
				a.ack(id, size)
			}
			pending = pending[:0]
			select {
			case <-stop:
			case <-time.After(400 * time.Millisecond):
			}
		}
	}
}

// chunkFile is the path of chunk h's data file in a chunkserver directory
// (see package dataplane/store).
func chunkFile(dir string, h uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.chunk", h))
}

// grepLog reports whether a daemon's log contains s.
func grepLog(d *daemon, s string) bool {
	f, err := os.Open(d.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

// eventually polls cond every 100 ms until it is true or bound passed;
// it returns the time taken and whether cond became true.
func eventually(bound time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > bound {
			return time.Since(start), false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// diagnoseRecords logs, for every chunk of path and every replica of it,
// the replica's length and how many of the missing record ids it holds
// (read directly from that replica), to tell a reader problem from data
// loss.
func diagnoseRecords(t *testing.T, cl *client.Client, path string, missing []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	locs, err := cl.Chunks(ctx, path)
	if err != nil {
		t.Logf("diagnose: %v", err)
		return
	}
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	for _, l := range locs {
		for _, r := range l.Replicas {
			buf := make([]byte, chunkSize)
			n, err := dc.Read(ctx, r, l.Handle, l.Version, 0, buf)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Logf("diagnose: chunk %d (handle %x v%d, master length %d) on %s: read %d bytes: %v", l.Index, l.Handle, l.Version, l.Length, r, n, err)
			}
			buf = buf[:n]
			holds := 0
			for _, id := range missing {
				if bytes.Contains(buf, []byte(id+"|")) {
					holds++
				}
			}
			t.Logf("diagnose: chunk %d (handle %x v%d, master length %d) on %s: %d bytes, holds %d of %d missing records",
				l.Index, l.Handle, l.Version, l.Length, r, n, holds, len(missing))
		}
	}
}

// diagnoseFile logs, for every chunk of path and every replica of it,
// whether the replica's bytes match want.
func diagnoseFile(t *testing.T, cl *client.Client, path string, want []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	locs, err := cl.Chunks(ctx, path)
	if err != nil {
		t.Logf("diagnose: %v", err)
		return
	}
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	for _, l := range locs {
		start := min(int64(len(want)), l.Index*chunkSize)
		w := want[start:min(int64(len(want)), start+chunkSize)]
		for _, r := range l.Replicas {
			buf := make([]byte, chunkSize)
			n, err := dc.Read(ctx, r, l.Handle, l.Version, 0, buf)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Logf("diagnose: chunk %d (handle %x v%d) on %s: read %d bytes: %v", l.Index, l.Handle, l.Version, r, n, err)
			}
			buf = buf[:n]
			zeros := 0
			for _, b := range buf {
				if b == 0 {
					zeros++
				}
			}
			t.Logf("diagnose: chunk %d (handle %x v%d, master length %d) on %s: %d bytes (want %d), equal %v, first difference at %d, %d zero bytes",
				l.Index, l.Handle, l.Version, l.Length, r, n, len(w), bytes.Equal(buf, w), firstDiff(buf, w), zeros)
		}
	}
}
