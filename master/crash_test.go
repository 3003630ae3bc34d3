package master

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

const childDirEnv = "GFS_MASTER_CRASH_CHILD_DIR"

// TestMasterCrashChild is the master process of TestCrashDuringCreateStorm;
// it does nothing unless started by it.
func TestMasterCrashChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrashDuringCreateStorm")
	}
	m, err := New(Options{Dir: dir, CheckpointEvery: 150})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	fmt.Println("ADDR", lis.Addr().String())
	m.Serve(lis) // until SIGKILL
	os.Exit(4)
}

// TestCrashDuringCreateStorm SIGKILLs a real master process while 64
// clients create files, restarts it, and checks that every acknowledged
// create survived and the namespace is whole (no entry without its parent),
// over several crash rounds on the same directory (checkpoints included).
func TestCrashDuringCreateStorm(t *testing.T) {
	dir := t.TempDir()
	rounds, perRound := 3, 300
	if os.Getenv("GFS_LONG_TESTS") != "" && !testing.Short() {
		rounds, perRound = 10, 3000
	}
	acked := map[string]bool{}
	attempted := map[string]bool{}
	for round := 0; round < rounds; round++ {
		a, att := stormRound(t, dir, round, perRound)
		for p := range a {
			acked[p] = true
		}
		for p := range att {
			attempted[p] = true
		}
		m, err := New(Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: recovery failed: %v", round, err)
		}
		m.mu.RLock()
		for p := range acked {
			if n := m.st.nodes[p]; n == nil || n.dir {
				t.Errorf("round %d: acknowledged create %s lost", round, p)
			}
		}
		for p, n := range m.st.nodes {
			if p == "/" {
				continue
			}
			par := m.st.nodes[parentOf(p)]
			if par == nil || !par.dir {
				t.Errorf("round %d: %s present without its parent directory", round, p)
			} else if _, ok := par.children[baseOf(p)]; !ok {
				t.Errorf("round %d: %s missing from its parent's entries", round, p)
			}
			if !n.dir && !attempted[p] {
				t.Errorf("round %d: %s present but never created", round, p)
			}
		}
		m.mu.RUnlock()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds: %d acknowledged creates, %d attempted", rounds, len(acked), len(attempted))
}

// stormRound runs one master child, creates files from 64 goroutines until
// perRound are acknowledged, then SIGKILLs the child mid-storm.
func stormRound(t *testing.T, dir string, round, perRound int) (acked, attempted map[string]bool) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMasterCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not start: %v", sc.Err())
	}
	go func() { // drain the rest of stdout
		for sc.Scan() {
		}
	}()
	cc, err := control.Dial(addr, control.DialOptions{CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	mc := controlpb.NewMasterClient(cc)

	var mu sync.Mutex
	acked, attempted = map[string]bool{}, map[string]bool{}
	var nAcked atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				p := fmt.Sprintf("/storm/r%d/g%02d/d%d/f%05d", round, g, i%4, i)
				mu.Lock()
				attempted[p] = true
				mu.Unlock()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := mc.Create(ctx, &controlpb.CreateRequest{Path: p, Parents: true, Replication: 2})
				cancel()
				if err != nil {
					return // the master is gone
				}
				mu.Lock()
				acked[p] = true
				mu.Unlock()
				nAcked.Add(1)
			}
		}()
	}
	for nAcked.Load() < int64(perRound) {
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(killed)
	wg.Wait()
	return acked, attempted
}
