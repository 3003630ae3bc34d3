package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

// fsckResult is the part of gfs fsck -json the scenarios look at.
type fsckResult struct {
	Healthy   bool `json:"healthy"`
	Corrupt   int  `json:"corrupt"`
	Divergent int  `json:"divergent"`
	Problems  []struct {
		Path      string   `json:"path"`
		Handle    uint64   `json:"handle"`
		Problem   string   `json:"problem"`
		Replicas  []string `json:"replicas"`
		Corrupt   []string `json:"corrupt"`
		Divergent []string `json:"divergent"`
	} `json:"problems"`
}

// runFsck runs the gfs binary's fsck -json (plus args) against the
// cluster and returns its exit code and report.
func runFsck(t *testing.T, masterAddr string, args ...string) (int, fsckResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	argv := append([]string{"fsck", "-json", "-master", masterAddr}, args...)
	cmd := exec.CommandContext(ctx, gfsBinary(t), argv...)
	// Plaintext like the daemons: no credentials from the environment.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GFS_TLS_DIR=") || strings.HasPrefix(kv, "GFS_MASTER=")
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("gfs %v: %v", argv, err)
	}
	var rep fsckResult
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("gfs %v: exit %d, no JSON report (%v):\n%s%s", argv, code, err, stdout.Bytes(), stderr.Bytes())
	}
	return code, rep
}

// replicaBytes reads the whole chunk loc from replica addr, verified
// against that replica's own checksums.
func replicaBytes(ctx context.Context, loc client.ChunkLocation, addr string) ([]byte, error) {
	dc := dataclient.New(dataclient.Options{IOTimeout: 10 * time.Second})
	defer dc.Close()
	buf := make([]byte, chunkSize)
	n, err := dc.Read(ctx, addr, loc.Handle, loc.Version, 0, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:n], nil
}

// settledChunk polls until path has one chunk with want replicas and no
// lease (no mutation can be in flight) and returns it.
func settledChunk(t *testing.T, cl *client.Client, path string, want int, bound time.Duration) client.ChunkLocation {
	t.Helper()
	var loc client.ChunkLocation
	_, ok := eventually(bound, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		locs, err := cl.Chunks(ctx, path)
		if err != nil || len(locs) != 1 {
			return false
		}
		loc = locs[0]
		return loc.Primary == "" && len(loc.Replicas) == want
	})
	if !ok {
		t.Fatalf("%s: not one settled chunk with %d replicas within %v (last seen %+v)", path, want, bound, loc)
	}
	return loc
}

// divergeReplica stops chunkserver i, rewrites n bytes of chunk h at off
// through its store (so the new bytes carry valid checksums: the replica
// verifies alone), keeps its version, and starts it again.
func divergeReplica(t *testing.T, c *procCluster, i int, h uint64, off int64, p []byte) {
	t.Helper()
	c.cs[i].stop()
	st, err := store.Open(c.csDir[i], store.Options{ChunkSize: chunkSize, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Info(store.Handle(h))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := st.WriteAt(store.Handle(h), p, off); err != nil {
		st.Close()
		t.Fatal(err)
	}
	if err := st.Sync(store.Handle(h)); err != nil {
		st.Close()
		t.Fatal(err)
	}
	after, err := st.Info(store.Handle(h))
	if err := errors.Join(err, st.Close()); err != nil {
		t.Fatal(err)
	}
	if after.Version != before.Version || after.Length != before.Length || after.Corrupt {
		t.Fatalf("rewrite changed chunk %x: %+v -> %+v", h, before, after)
	}
	c.cs[i].start()
}

// waitRegistered waits until the master logged chunkserver i's
// registration after its latest start.
func waitRegistered(t *testing.T, c *procCluster, i int, bound time.Duration) {
	t.Helper()
	d := c.cs[i]
	d.mu.Lock()
	runs := d.runs
	d.mu.Unlock()
	want := fmt.Sprintf(`msg="chunkserver registered" node=master server=%s `, c.csAddr[i])
	if _, ok := eventually(bound, func() bool { return countLog(c.master, want) >= runs }); !ok {
		t.Fatalf("%s not registered again within %v", c.csAddr[i], bound)
	}
}

// Scenario 18 (issue 15, defect 4): one replica of a chunk holds other
// bytes than the rest at the same version, each verifying against its own
// checksums (what a primary that applied a write a secondary refused leaves
// behind). gfs fsck -verify used to say HEALTHY. Now it compares the
// replicas block by block, exits 3 naming the divergent replica, and
// reports it; the master drops it and copies a good replica over it, and
// fsck -verify is back at exit 0 with every replica holding what was
// written.
func TestDivergentReplicaFoundByFsckAndRepaired(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 3, replication: 3})
	ctx := context.Background()
	cl := c.dial(t)
	const path = "/diverge/fsck"
	// Three full 64 KiB blocks and a partial one; block 1 is rewritten.
	data := pattern(181, 3*64<<10+1000)
	if err := writeFile(ctx, cl, path, data); err != nil {
		t.Fatal(err)
	}
	loc := settledChunk(t, cl, path, 3, 30*time.Second)
	if code, rep := runFsck(t, c.masterAddr, "-verify"); code != 0 || !rep.Healthy {
		t.Fatalf("fsck -verify before the divergence: exit %d, %+v", code, rep)
	}
	victim := loc.Replicas[len(loc.Replicas)-1]
	vi := c.csIndex(victim)
	divergeReplica(t, c, vi, loc.Handle, 64<<10, pattern(182, 64<<10))
	diverged := time.Now()
	// It serves again, registers at the same version and is listed as
	// before.
	var planted []byte
	if _, ok := eventually(30*time.Second, func() bool {
		var err error
		planted, err = replicaBytes(ctx, loc, victim)
		return err == nil
	}); !ok || bytes.Equal(planted, data) {
		t.Fatalf("the rewritten replica %s does not serve (%v) or reads back equal to the file: the divergence was not planted", victim, ok)
	}
	waitRegistered(t, c, vi, 30*time.Second)
	settledChunk(t, cl, path, 3, 30*time.Second)
	t.Logf("chunk %x v%d rewritten on %s (block 1, valid checksums, same version and length)", loc.Handle, loc.Version, victim)

	code, rep := runFsck(t, c.masterAddr, "-verify")
	if code != 3 || rep.Healthy || rep.Divergent != 1 || len(rep.Problems) != 1 ||
		rep.Problems[0].Problem != "divergent" || !slices.Equal(rep.Problems[0].Divergent, []string{victim}) {
		t.Fatalf("fsck -verify of a divergent replica: exit %d, want 3 naming %s; report %+v", code, victim, rep)
	}
	t.Logf("fsck -verify: exit %d, divergent %v", code, rep.Problems[0].Divergent)

	// The report is the repair: the master drops the divergent replica
	// and copies a good one; fsck -verify is healthy again.
	var last fsckResult
	lastCode := -1
	took, ok := eventually(60*time.Second, func() bool {
		lastCode, last = runFsck(t, c.masterAddr, "-verify")
		return lastCode == 0 && last.Healthy
	})
	if !ok {
		t.Fatalf("fsck -verify not healthy within %v of the report: exit %d, %+v", took, lastCode, last)
	}
	healthy := time.Since(diverged)
	cur := settledChunk(t, cl, path, 3, 30*time.Second)
	for _, r := range cur.Replicas {
		b, err := replicaBytes(ctx, cur, r)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("replica %s after the repair: %d bytes (err %v), equal to what was written: %v", r, len(b), err, bytes.Equal(b, data))
		}
	}
	if !slices.Contains(cur.Replicas, victim) {
		t.Logf("the repaired copy went elsewhere: %v", cur.Replicas)
	}
	checkFile(t, cl, path, data)
	t.Logf("repaired: fsck -verify healthy %v after the report (%v after the divergence was planted); replicas %v at v%d all equal to the written bytes",
		took.Round(time.Millisecond), healthy.Round(time.Millisecond), cur.Replicas, cur.Version)
}

// Scenario 19 (issue 15, defect 4): the same divergence as scenario 18,
// with the chunkservers' replica check on (-replica-check 100ms) and no
// fsck: the lowest-address replica compares the replicas' block checksums,
// reports the divergent one (seen twice, a check apart), and the master
// replaces it from a good copy; fsck -verify then finds nothing.
func TestDivergentReplicaFoundByReplicaCheck(t *testing.T) {
	skipShort(t)
	const every = 100 * time.Millisecond
	c := startCluster(t, clusterOptions{chunkservers: 3, replication: 3, csArgs: []string{"-replica-check", every.String()}})
	ctx := context.Background()
	cl := c.dial(t)
	const path = "/diverge/check"
	data := pattern(191, 5*64<<10+321)
	if err := writeFile(ctx, cl, path, data); err != nil {
		t.Fatal(err)
	}
	loc := settledChunk(t, cl, path, 3, 30*time.Second)
	// The highest-address replica diverges (the lowest one compares).
	victim := slices.Max(loc.Replicas)
	vi := c.csIndex(victim)
	divergeReplica(t, c, vi, loc.Handle, 3*64<<10+5, pattern(192, 1000))
	diverged := time.Now()
	waitRegistered(t, c, vi, 30*time.Second)
	// Every listed replica holds what was written, the repaired one too.
	var cur client.ChunkLocation
	took, ok := eventually(60*time.Second, func() bool {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		locs, err := cl.Chunks(lctx, path)
		if err != nil || len(locs) != 1 || len(locs[0].Replicas) != 3 {
			return false
		}
		cur = locs[0]
		for _, r := range cur.Replicas {
			if b, err := replicaBytes(lctx, cur, r); err != nil || !bytes.Equal(b, data) {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("divergent replica %s not replaced within %v of its restart: %+v", victim, took, cur)
	}
	lowest := slices.Min(loc.Replicas)
	if !grepLog(c.cs[c.csIndex(lowest)], "replica check: divergent replica reported to the master") || !grepLog(c.master, "replica check by "+lowest) {
		t.Fatalf("repaired, but the lowest-address replica %s did not log the report (or the master its reason)", lowest)
	}
	if code, rep := runFsck(t, c.masterAddr, "-verify"); code != 0 || !rep.Healthy {
		t.Fatalf("fsck -verify after the repair: exit %d, %+v", code, rep)
	}
	checkFile(t, cl, path, data)
	t.Logf("replica check: %s replaced %v after the divergence was planted (%v after its restart was seen), check every %v; replicas %v",
		victim, time.Since(diverged).Round(time.Millisecond), took.Round(time.Millisecond), every, cur.Replicas)
}
