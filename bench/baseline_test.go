package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// relayChildEnv selects the relay-node role in a re-executed test binary;
// its value holds the node's arguments as a JSON array.
const relayChildEnv = "GFS_BENCH_RELAY_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(relayChildEnv); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := RunRelayNodeCommand(context.Background(), a, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testRelayCommand re-executes the test binary as a relay hop.
func testRelayCommand(ctx context.Context, args []string) *exec.Cmd {
	a, _ := json.Marshal(args)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), relayChildEnv+"="+string(a))
	return cmd
}

func TestServeBaseline(t *testing.T) {
	defer goleak.VerifyNone(t)
	b, err := measureServe(context.Background(), t.TempDir(), 2, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	sf, rw := b.Parts["sendfile_mib_per_s"], b.Parts["readwrite_mib_per_s"]
	if sf <= 0 || rw <= 0 || b.Value != max(sf, rw) || b.Unit != UnitMiBPerS {
		t.Errorf("serve baseline = %+v, want both parts measured and the faster as value", b)
	}
}

func TestODirectBaseline(t *testing.T) {
	dir := t.TempDir()
	b, err := measureODirect(context.Background(), dir, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Parts["write_mib_per_s"] <= 0 || b.Parts["read_mib_per_s"] <= 0 || b.Value != b.Parts["write_mib_per_s"] {
		t.Errorf("odirect baseline = %+v", b)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestRPCBaseline(t *testing.T) {
	defer goleak.VerifyNone(t)
	b, err := measureRPC(context.Background(), 3, 100, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Value <= 0 || b.Unit != UnitOpsPerS || b.P50Ms <= 0 || b.P99Ms < b.P50Ms {
		t.Errorf("rpc baseline = %+v", b)
	}
}

func TestRelayBaselineThroughChildProcesses(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	b, err := measureRelay(context.Background(), dir, testRelayCommand, 3, 2, 300*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Value <= 0 || b.Unit != UnitMiBPerS || b.Clients != 2 || b.Parts["hops"] != 3 {
		t.Errorf("relay baseline = %+v", b)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestRelayNodeWritesAndForwards checks one hop in process: what goes in is
// on its disk while the stream runs and comes out at the next hop, and the
// acknowledgement comes only after both.
func TestRelayNodeWritesAndForwards(t *testing.T) {
	defer goleak.VerifyNone(t)
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := sink.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		var all []byte
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.Write([]byte{1})
		got <- all
	}()
	dir := t.TempDir()
	node, err := NewRelayNode(RelayNodeOptions{Dir: dir, Next: sink.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- node.Serve() }()
	defer func() {
		node.Close()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()

	// 2.5 packets: the last one is partial and needs the O_DIRECT padding.
	data := make([]byte, relayBufBytes*5/2+123)
	NewPattern(4).Fill(4, data, 0)
	c, err := net.Dial("tcp", node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	// The hop's file has the data before the stream ends (it is removed after).
	deadline := time.Now().Add(10 * time.Second)
	for {
		matches, _ := filepath.Glob(filepath.Join(dir, "stream-*"))
		if len(matches) == 1 {
			if info, err := os.Stat(matches[0]); err == nil && info.Size() >= 2*relayBufBytes {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no stream file with data in %s", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.(*net.TCPConn).CloseWrite()
	var ack [1]byte
	if _, err := c.Read(ack[:]); err != nil {
		t.Fatalf("no ack: %v", err)
	}
	if out := <-got; string(out) != string(data) {
		t.Fatalf("next hop got %d bytes, want the %d sent", len(out), len(data))
	}
}

func TestRelayNodeArgs(t *testing.T) {
	for _, args := range [][]string{{}, {"-dir"}, {"-next", "x"}, {"-dir", "d", "-bogus", "1"}} {
		if _, err := parseRelayArgs(args); err == nil {
			t.Errorf("parseRelayArgs(%q) accepted", args)
		}
	}
	o, err := parseRelayArgs([]string{"-dir", "d", "-next", "h:1", "-addr", "a:2"})
	if err != nil || o.Dir != "d" || o.Next != "h:1" || o.Addr != "a:2" {
		t.Errorf("parseRelayArgs = %+v, %v", o, err)
	}
	var out strings.Builder
	if err := RunRelayNodeCommand(context.Background(), []string{"-next", "x"}, strings.NewReader(""), &out); err == nil {
		t.Error("relay node ran without -dir")
	}
}
