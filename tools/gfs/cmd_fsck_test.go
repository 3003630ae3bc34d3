package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
)

// startTestCluster starts an in-process cluster for command tests.
func startTestCluster(t *testing.T, chunkservers int) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Dir: t.TempDir(), Chunkservers: chunkservers, ChunkSize: 1 << 20,
		LeaseTTL: 2 * time.Second, HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	return c
}

type fsckJSON struct {
	Files, Chunks, Missing, UnderReplicated int
	Healthy                                 bool
	Problems                                []fsckProblem
}

func fsckOnce(t *testing.T, env map[string]string) (int, fsckJSON) {
	t.Helper()
	code, out, stderr := runCmd(t, env, "", "fsck", "-json")
	var rep fsckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("fsck -json (exit %d): %v\n%s%s", code, err, out, stderr)
	}
	return code, fsckJSON{rep.Files, rep.Chunks, rep.Missing, rep.UnderReplicated, rep.Healthy, rep.Problems}
}

// waitFsck polls fsck until cond holds (the master notices dead servers
// after DeadAfter).
func waitFsck(t *testing.T, env map[string]string, cond func(int, fsckJSON) bool) (int, fsckJSON) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, rep := fsckOnce(t, env)
		if cond(code, rep) {
			return code, rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("fsck never reached the expected state; last exit %d: %+v", code, rep)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFsckReportsUnderReplicatedAndMissing(t *testing.T) {
	cl := startTestCluster(t, 3)
	env := map[string]string{"GFS_MASTER": cl.MasterAddr()}
	data := strings.Repeat("fsck test data ", 150000) // ~2.2 chunks
	if code, _, stderr := runCmd(t, env, data, "put", "-p", "-", "/d/f"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	// Replica lists converge with the chunkservers' reports: wait for health.
	waitFsck(t, env, func(code int, rep fsckJSON) bool {
		return code == 0 && rep.Healthy && rep.Files == 1 && rep.Chunks == 3
	})
	if code, out, _ := runCmd(t, env, "", "fsck", "/d"); code != 0 || !strings.Contains(out, "HEALTHY") {
		t.Fatalf("fsck /d: exit %d\n%s", code, out)
	}

	// One of three replicas gone, no spare server: under-replicated, exit 4.
	if err := cl.StopChunkserver(0); err != nil {
		t.Fatal(err)
	}
	waitFsck(t, env, func(code int, rep fsckJSON) bool {
		return code == fsckExitUnderRepl && rep.UnderReplicated == 3 && rep.Missing == 0
	})

	// Every replica gone: data missing, exit 1.
	cl.StopChunkserver(1)
	cl.StopChunkserver(2)
	_, rep := waitFsck(t, env, func(code int, rep fsckJSON) bool { return code == 1 && rep.Missing == 3 })
	if rep.Healthy || rep.Problems[0].Problem != "missing" || rep.Problems[0].Path != "/d/f" {
		t.Fatalf("report: %+v", rep)
	}
	code, out, _ := runCmd(t, env, "", "fsck")
	if code != 1 || !strings.Contains(out, "MISSING DATA") {
		t.Fatalf("fsck text: exit %d\n%s", code, out)
	}
	if code, _, _ := runCmd(t, env, "", "fsck", "/nope"); code != 1 {
		t.Fatalf("fsck of a missing path: exit %d", code)
	}
}

func TestClientCommandsInProcess(t *testing.T) {
	cl := startTestCluster(t, 3)
	env := map[string]string{"GFS_MASTER": cl.MasterAddr()}
	run := func(stdin string, want int, args ...string) string {
		t.Helper()
		code, out, stderr := runCmd(t, env, stdin, args...)
		if code != want {
			t.Fatalf("gfs %v: exit %d, want %d; stderr %s", args, code, want, stderr)
		}
		return out + stderr
	}
	run("", 0, "mkdir", "-p", "/a/b")
	run("", 1, "mkdir", "/a/b")
	run("hello", 0, "put", "-", "/a/b/h")
	if out := run("", 1, "put", "-", "/a/b/h"); !strings.Contains(out, "file exists") {
		t.Fatalf("put onto existing: %s", out)
	}
	run("HELLO", 0, "put", "-f", "-", "/a/b/h")
	if out := run("x", 1, "put", "-", "/a/b"); !strings.Contains(out, "is a directory") {
		t.Fatalf("put onto a directory: %s", out)
	}
	if out := run("x", 1, "put", "-", "/nodir/h"); !strings.Contains(out, "no such file") {
		t.Fatalf("put without parent: %s", out)
	}
	if out := run("", 0, "ls", "-json", "/a/b"); strings.Contains(out, ".put-") {
		t.Fatalf("failed puts left temporary files:\n%s", out)
	}
	if out := run("", 0, "cat", "/a/b/h"); out != "HELLO" {
		t.Fatalf("cat = %q", out)
	}
	run("", 0, "mv", "/a/b/h", "/a/h")
	if out := run("", 0, "ls", "/a"); !strings.Contains(out, "b/") || !strings.Contains(out, " h") {
		t.Fatalf("ls:\n%s", out)
	}
	var fi struct {
		Path   string `json:"path"`
		Length int64  `json:"length"`
		Chunks int64  `json:"chunks"`
	}
	if err := json.Unmarshal([]byte(run("", 0, "stat", "-json", "/a/h")), &fi); err != nil || fi.Path != "/a/h" || fi.Length != 5 || fi.Chunks != 1 {
		t.Fatalf("stat -json: %+v, %v", fi, err)
	}
	if out := run("", 1, "stat", "/a/missing"); !strings.Contains(out, "no such file") {
		t.Fatalf("stat missing: %s", out)
	}
	off1 := strings.TrimSpace(run("one", 0, "append", "/logs/x"))
	off2 := strings.TrimSpace(run("two", 0, "append", "/logs/x"))
	if off1 != "0" || off2 == off1 {
		t.Fatalf("append offsets %q, %q", off1, off2)
	}
	if out := run("", 0, "cat", "-records", "/logs/x"); out != "one\ntwo\n" {
		t.Fatalf("cat -records = %q", out)
	}
	if out := run("", 1, "append", "/a"); !strings.Contains(out, "directory") {
		t.Fatalf("append to a directory: %s", out)
	}
	run("", 1, "rm", "/a")
	run("", 0, "rm", "-r", "/a")
	if out := run("", 0, "ls", "-json", "/"); !strings.Contains(out, `"logs"`) || strings.Contains(out, `"a"`) {
		t.Fatalf("ls -json / after rm:\n%s", out)
	}
}

// TestFsckCountsKeptBadReplicaCorrupt (issue 15, defect 4): a replica
// reported bad while it is its chunk's last live copy stays listed (its
// intact bytes still read) but is no good copy: plain fsck, which reads
// nothing, used to call the chunk healthy. Now the master marks it and
// fsck, with or without -verify, reports the chunk corrupt (exit 3).
func TestFsckCountsKeptBadReplicaCorrupt(t *testing.T) {
	cl := startTestCluster(t, 2)
	env := map[string]string{"GFS_MASTER": cl.MasterAddr()}
	if code, _, stderr := runCmd(t, env, "one copy only", "put", "-p", "-replication", "1", "-", "/k/f"); code != 0 {
		t.Fatalf("put: exit %d: %s", code, stderr)
	}
	waitFsck(t, env, func(code int, rep fsckJSON) bool { return code == 0 && rep.Healthy && rep.Chunks == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	locs, err := c.Chunks(ctx, "/k/f")
	if err != nil || len(locs) != 1 || len(locs[0].Replicas) != 1 {
		t.Fatalf("chunks: %v, %v", locs, err)
	}
	only := locs[0].Replicas[0]
	c.ReportDivergentReplica(ctx, locs[0], client.Divergence{Addr: only, Block: 0, Length: locs[0].Length})
	for _, args := range [][]string{{"fsck", "-json"}, {"fsck", "-json", "-verify"}} {
		code, out, stderr := runCmd(t, env, "", args...)
		var rep fsckReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: exit %d: %v\n%s%s", args, code, err, out, stderr)
		}
		if code != fsckExitCorrupt || rep.Healthy || rep.Corrupt != 1 || len(rep.Problems) != 1 ||
			rep.Problems[0].Problem != "corrupt" || !slices.Equal(rep.Problems[0].Corrupt, []string{only}) || !slices.Equal(rep.Problems[0].Replicas, []string{only}) {
			t.Fatalf("%v with the only replica reported bad: exit %d, want %d; %+v", args, code, fsckExitCorrupt, rep)
		}
	}
	if code, out, _ := runCmd(t, env, "", "fsck"); code != fsckExitCorrupt || !strings.Contains(out, "1 corrupt") || !strings.Contains(out, "DEGRADED") {
		t.Fatalf("fsck text: exit %d\n%s", code, out)
	}
	// Its bytes still read: kept, a partly bad copy beats none.
	if code, out, _ := runCmd(t, env, "", "cat", "/k/f"); code != 0 || out != "one copy only" {
		t.Fatalf("cat of the kept copy: exit %d %q", code, out)
	}
}
