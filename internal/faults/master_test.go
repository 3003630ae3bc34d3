package faults

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// namespaceSnapshot lists every path under root (recursively) with its
// kind, length and chunk count.
func namespaceSnapshot(t *testing.T, cl *client.Client, root string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []string
	var walk func(string)
	walk = func(dir string) {
		ents, err := cl.List(ctx, dir)
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		for _, e := range ents {
			out = append(out, fmt.Sprintf("%s dir=%v chunks=%d repl=%d", e.Path, e.IsDir, e.Chunks, e.Replication))
			if e.IsDir {
				walk(e.Path)
			}
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// Scenario 5: the master killed (-9) and restarted while clients append
// and write. The namespace, the chunk lists and versions come back from
// the checkpoint plus the log; chunk locations come back from the
// chunkservers' reports; acknowledged data is all there and the load
// continues.
func TestMasterKillRestartUnderLoad(t *testing.T) {
	skipShort(t)
	// Checkpoint every 40 records so that recovery reads a checkpoint and
	// a log tail.
	c := startCluster(t, clusterOptions{chunkservers: 3, replication: 3, checkpointEvery: 40})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.dial(t)

	// A static part of the namespace that nobody touches during the load.
	static := map[string][]byte{}
	for i := range 6 {
		p := fmt.Sprintf("/static/d%d/f%d", i%2, i)
		static[p] = pattern(uint64(500+i), 1+i*chunkSize/2)
		if err := writeFile(ctx, cl, p, static[p]); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Mkdir(ctx, "/static/empty", false); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rename(ctx, "/static/d0/f0", "/static/d1/moved"); err != nil {
		t.Fatal(err)
	}
	static["/static/d1/moved"] = static["/static/d0/f0"]
	delete(static, "/static/d0/f0")
	if err := cl.Delete(ctx, "/static/d1/f5", false); err != nil {
		t.Fatal(err)
	}
	delete(static, "/static/d1/f5")
	staticPaths := slices.Sorted(mapKeys(static))
	waitReplication(t, cl, staticPaths, 3, nil, 30*time.Second)
	nsBefore := namespaceSnapshot(t, cl, "/static")
	chunksBefore := snapshotChunks(t, cl, staticPaths)

	const logPath = "/load/log"
	if err := cl.Create(ctx, logPath, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	files := newFileLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() { appender(ctx, cl, logPath, fmt.Sprintf("m%d", g), 200+g*100, 0, acks, stop) })
	}
	wg.Go(func() { writer(ctx, cl, "/load/w", 9, files, stop) })
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	waitAcks(t, acks, 200, 30*time.Second)
	before, _ := acks.counts()
	t.Logf("kill -9 master; %d appends acknowledged, %d files written", before, len(files.paths()))
	c.master.kill()
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	c.master.start()
	// Past the restarted master's lease grace and the old leases: every
	// append from now on needs a lease the new master granted.
	time.Sleep(2*leaseTTL + 500*time.Millisecond)
	mid, _ := acks.counts()
	waitAcks(t, acks, mid+200, 2*retryWindow)
	t.Logf("%d appends acknowledged while the master was down or in its grace period; 200 more %v after the restart", mid-before, time.Since(start).Round(time.Millisecond))
	stopLoad()

	acked, failed := acks.counts()
	t.Logf("%d appends acknowledged, %d failed; %d files written, %d failed", acked, failed, len(files.paths()), len(files.fails))
	for _, err := range acks.fails {
		t.Errorf("append surfaced an error: %v", err)
	}
	for _, err := range files.fails {
		t.Errorf("write surfaced an error: %v", err)
	}
	if nsAfter := namespaceSnapshot(t, cl, "/static"); !slices.Equal(nsBefore, nsAfter) {
		t.Errorf("namespace changed across the master restart:\nbefore %v\nafter  %v", nsBefore, nsAfter)
	}
	waitReplication(t, cl, staticPaths, 3, nil, 30*time.Second)
	chunksAfter := snapshotChunks(t, cl, staticPaths)
	for _, p := range staticPaths {
		if fmt.Sprint(chunksBefore[p]) != fmt.Sprint(chunksAfter[p]) {
			t.Errorf("%s: chunks (handle, version, replicas) before %v, after %v", p, chunksBefore[p], chunksAfter[p])
		}
	}
	for p, data := range static {
		checkFile(t, cl, p, data)
	}
	verifyRecords(t, cl, logPath, acks)
	verifyFiles(t, cl, files)
	// A second restart, now idle, recovers the same state again.
	nsLoad := namespaceSnapshot(t, cl, "/")
	c.master.kill()
	c.master.start()
	c.waitServers(3, 30*time.Second)
	if again := namespaceSnapshot(t, cl, "/"); !slices.Equal(nsLoad, again) {
		t.Errorf("namespace differs after a second restart:\nbefore %v\nafter  %v", nsLoad, again)
	}
	verifyRecords(t, cl, logPath, acks)
}
