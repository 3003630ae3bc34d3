package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// realReplicas counts the replicas of loc the master lists that verify
// end to end and, when on the chunkserver at lostIdx, still have their
// chunk file on disk.
func realReplicas(ctx context.Context, c *procCluster, cl *client.Client, loc client.ChunkLocation, size int64, lostIdx int) int {
	n := 0
	for _, r := range loc.Replicas {
		if got, err := cl.VerifyReplica(ctx, loc, r); err != nil || got != size {
			continue
		}
		if i := c.csIndex(r); i == lostIdx {
			if _, err := os.Stat(chunkFile(c.csDir[i], loc.Handle)); err != nil {
				continue
			}
		}
		n++
	}
	return n
}

// lostDirBound bounds the detection and re-replication of a lost disk.
const lostDirBound = 20 * time.Second

// Scenario 8: a chunkserver's data directory is removed while it runs (a
// lost disk). The loss is detected and every chunk it held is
// re-replicated: each chunk ends with 3 replicas that really hold it.
func TestDataDirRemovedWhileRunning(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 4, replication: 3})
	ctx := context.Background()
	cl := c.dial(t)
	want := map[string][]byte{}
	for i := range 4 {
		p := fmt.Sprintf("/disk/f%d", i)
		want[p] = pattern(uint64(80+i), chunkSize+i*100000)
		if err := writeFile(ctx, cl, p, want[p]); err != nil {
			t.Fatal(err)
		}
	}
	const lost = 0
	if err := os.RemoveAll(c.csDir[lost]); err != nil {
		t.Fatal(err)
	}
	t.Logf("removed %s (data directory of cs%d, %s) while it runs", c.csDir[lost], lost, c.csAddr[lost])
	// Detected: the chunkserver stops by itself (fail-stop) and says why.
	if took, ok := eventually(lostDirBound, func() bool { return !c.cs[lost].running() }); !ok {
		t.Fatalf("cs%d still running %v after its data directory was removed", lost, took)
	} else {
		t.Logf("cs%d stopped by itself %v after its directory was removed", lost, took.Round(time.Millisecond))
	}
	if !grepLog(c.cs[lost], "data directory lost") {
		t.Errorf("cs%d's log does not say its data directory was lost", lost)
	}
	took, ok := eventually(lostDirBound, func() bool {
		for p, data := range want {
			locs, err := cl.Chunks(ctx, p)
			if err != nil {
				return false
			}
			for _, l := range locs {
				size := min(int64(len(data))-l.Index*chunkSize, chunkSize)
				if realReplicas(ctx, c, cl, l, size, lost) < 3 {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		for p := range want {
			locs, _ := cl.Chunks(ctx, p)
			t.Logf("%s: %+v", p, locs)
		}
		t.Fatalf("chunks of the lost directory not re-replicated within %v", took)
	}
	t.Logf("every chunk back to 3 real replicas %v after the directory was removed (bound %v)", took.Round(time.Millisecond), lostDirBound)
	for p, data := range want {
		checkFile(t, cl, p, data)
	}
	// New writes still work (the lost server takes none, or takes them
	// into a working directory).
	if err := writeFile(ctx, cl, "/disk/after", pattern(89, 3*chunkSize)); err != nil {
		t.Fatalf("write after the disk loss: %v", err)
	}
	checkFile(t, cl, "/disk/after", pattern(89, 3*chunkSize))
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it at cleanup; it skips the test when mounting is not possible.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a small tmpfs for the full disk (needs root and mount): %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Scenario 9: one chunkserver's disk (a 2.5 MiB tmpfs) fills up while files
// are written. Writes go to other chunkservers or fail with a clear error
// in bounded time; every acknowledged file reads back.
func TestDiskFullOnOneChunkserver(t *testing.T) {
	skipShort(t)
	small := mountTmpfs(t, 5<<19)
	c := startCluster(t, clusterOptions{chunkservers: 4, replication: 3, csDir: func(i int) string {
		if i == 0 {
			return small
		}
		return ""
	}})
	ctx := context.Background()
	cl := c.dial(t)
	want := map[string][]byte{}
	var failures []error
	for i := range 12 {
		p := fmt.Sprintf("/full/f%d", i)
		data := pattern(uint64(90+i), 2*chunkSize+i*1000)
		wctx, cancel := context.WithTimeout(ctx, 2*retryWindow)
		start := time.Now()
		err := writeFile(wctx, cl, p, data)
		cancel()
		if err != nil {
			t.Logf("write %s failed after %v: %v", p, time.Since(start).Round(time.Millisecond), err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("write %s did not fail by itself: it ran into the test's deadline", p)
			}
			failures = append(failures, err)
			continue
		}
		want[p] = data
	}
	var st syscallStatfs
	free := statfsFree(small, &st)
	t.Logf("%d of 12 files written, %d failed; %d bytes left on the full chunkserver's disk", len(want), len(failures), free)
	if len(want) == 0 {
		t.Fatal("no write succeeded with three chunkservers that have space")
	}
	for p, data := range want {
		checkFile(t, cl, p, data)
	}
	// Phase 2: the disk fills up under chunks it already holds. Record
	// appends to a file with a replica there go on (elsewhere) or fail
	// with an error; what was acknowledged stays readable.
	const logPath = "/full/log"
	if err := cl.Create(ctx, logPath, client.CreateOptions{Replication: 4}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	appender(ctx, cl, logPath, "pre", 1000, 5, acks, nil)
	filler, err := os.Create(filepath.Join(small, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := filler.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	filler.Close()
	t.Logf("disk filled: %d bytes left", statfsFree(small, &st))
	start := time.Now()
	appender(ctx, cl, logPath, "full", 30000, 100, acks, nil)
	acked, failed := acks.counts()
	t.Logf("appends with a full replica: %d acknowledged, %d failed in %v", acked, failed, time.Since(start).Round(time.Millisecond))
	for i, err := range acks.fails {
		if i < 3 {
			t.Logf("append error: %v", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("append did not fail by itself: %v", err)
		}
	}
	verifyRecords(t, cl, logPath, acks)

	// The full server holds only complete, verifiable chunks.
	for p, data := range want {
		locs, err := cl.Chunks(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			size := min(int64(len(data))-l.Index*chunkSize, chunkSize)
			for _, r := range l.Replicas {
				if n, err := cl.VerifyReplica(ctx, l, r); err != nil || n != size {
					t.Errorf("%s chunk %d on %s: %d bytes, %v (want %d)", p, l.Index, r, n, err, size)
				}
			}
		}
	}
}

type syscallStatfs = syscall.Statfs_t

func statfsFree(dir string, st *syscall.Statfs_t) int64 {
	if err := syscall.Statfs(dir, st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}
