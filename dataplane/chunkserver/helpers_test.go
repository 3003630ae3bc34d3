package chunkserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

const childDirEnv = "GFS_CHUNKSERVER_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(dir)
		return
	}
	os.Exit(m.Run())
}

// runChild is the body of a chunkserver child process: it prints its
// address and serves until killed.
func runChild(dir string) {
	s, err := New(Options{Addr: "127.0.0.1:0", Dir: dir, Store: store.Options{ChunkSize: testChunkSize, ScrubRate: -1}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("addr", s.Addr())
	_ = s.Serve(context.Background())
	os.Exit(0)
}

// testChunkSize keeps chunks small so tests fill them quickly.
const testChunkSize = 4 << 20

// noLeaks registers the goroutine leak check; call it first so it runs
// after every other cleanup.
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer starts an in-process chunkserver in a fresh directory,
// closed at cleanup. mod may adjust the options.
func startServer(t *testing.T, mod func(*Options)) *Server {
	t.Helper()
	opts := Options{Addr: "127.0.0.1:0", Dir: t.TempDir(), Logger: testLogger(t),
		Store: store.Options{ChunkSize: testChunkSize, ScrubRate: -1}}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", s.Addr(), err)
		}
		<-errc
	})
	return s
}

// ctl is a gRPC client of a chunkserver's control service (the master's role).
type ctl struct {
	controlpb.ChunkserverClient
}

func dialCtl(t *testing.T, addr string) ctl {
	t.Helper()
	cc, err := control.Dial(addr, control.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ctl{controlpb.NewChunkserverClient(cc)}
}

// replicaSet is a chunk on a set of chunkservers with a primary holding a lease.
type replicaSet struct {
	addrs   []string
	ctls    []ctl
	primary int
	handle  uint64
	version uint64
}

// newChunk creates chunk h at version 1 on every server and grants the
// lease to servers[primary].
func newChunk(t *testing.T, servers []string, h uint64, primary int) *replicaSet {
	t.Helper()
	rs := &replicaSet{addrs: servers, primary: primary, handle: h, version: 1}
	ctx := context.Background()
	for _, a := range servers {
		c := dialCtl(t, a)
		rs.ctls = append(rs.ctls, c)
		if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1}); err != nil {
			t.Fatalf("create chunk on %s: %v", a, err)
		}
	}
	if _, err := rs.ctls[primary].GrantLease(ctx, grantLease(h, 1, 60000, rs.secondaries()...)); err != nil {
		t.Fatalf("grant lease: %v", err)
	}
	return rs
}

func (rs *replicaSet) primaryAddr() string { return rs.addrs[rs.primary] }

// secondaries are the replicas other than the primary.
func (rs *replicaSet) secondaries() []string {
	var out []string
	for i, a := range rs.addrs {
		if i != rs.primary {
			out = append(out, a)
		}
	}
	return out
}

// readAll reads the whole chunk from one replica (verified).
func readAll(t *testing.T, dc *dataclient.Client, addr string, h uint64) []byte {
	t.Helper()
	ctx := context.Background()
	n, err := dc.Length(ctx, addr, h, 0)
	if err != nil {
		t.Fatalf("length from %s: %v", addr, err)
	}
	buf := make([]byte, n)
	got, err := dc.Read(ctx, addr, h, 0, 0, buf)
	if err != nil && err != io.EOF || int64(got) != n {
		t.Fatalf("read %d bytes from %s: got %d, %v", n, addr, got, err)
	}
	return buf
}

func newClient(t *testing.T) *dataclient.Client {
	c := dataclient.New(dataclient.Options{IOTimeout: 20 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func addrsOf(ss []*Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Addr())
	}
	return out
}

// child is a chunkserver in its own process.
type child struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	wait sync.Once
}

func startChild(t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, dir: dir}
	t.Cleanup(c.kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		t.Fatalf("child chunkserver: %q %v", line, err)
	}
	c.addr = strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	return c
}

// kill sends SIGKILL and reaps the process.
func (c *child) kill() {
	c.wait.Do(func() {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	})
}
