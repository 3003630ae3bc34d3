package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// lastChunkLeader polls until the last chunk of path has a primary and
// returns the chunk.
func lastChunkLeader(t *testing.T, cl *client.Client, path string, bound time.Duration) client.ChunkLocation {
	t.Helper()
	var loc client.ChunkLocation
	_, ok := eventually(bound, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		locs, err := cl.Chunks(ctx, path)
		if err != nil || len(locs) == 0 {
			return false
		}
		loc = locs[len(locs)-1]
		return loc.Primary != ""
	})
	if !ok {
		t.Fatalf("%s: no primary for the last chunk within %v (last seen %+v)", path, bound, loc)
	}
	return loc
}

// waitAcks waits until at least n appends were acknowledged.
func waitAcks(t *testing.T, a *ackLog, n int, bound time.Duration) {
	t.Helper()
	if _, ok := eventually(bound, func() bool { acked, _ := a.counts(); return acked >= n }); !ok {
		acked, failed := a.counts()
		t.Fatalf("only %d appends acknowledged within %v (want %d), %d failed", acked, bound, n, failed)
	}
}

// Scenario 1: kill -9 the primary, then a secondary, during 100 concurrent
// record appends. Every acknowledged append reads back intact exactly once;
// appends succeed again after a new lease; the chunks are re-replicated.
func TestKillPrimaryThenSecondaryDuringAppends(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 5, replication: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var clients []*client.Client
	for range 4 {
		clients = append(clients, c.dial(t))
	}
	const path = "/appends/log"
	if err := clients[0].Create(ctx, path, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	// The master grants no lease for one lease period after it started.
	appender(ctx, clients[0], path, "warm", 100, 1, acks, nil)
	if n, _ := acks.counts(); n != 1 {
		t.Fatalf("first append failed: %v", acks.fails)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 100 {
		wg.Go(func() {
			appender(ctx, clients[g%len(clients)], path, fmt.Sprintf("g%d", g), 64+(g*97)%3000, 0, acks, stop)
		})
	}
	defer func() { close(stop); wg.Wait() }()

	waitAcks(t, acks, 300, 30*time.Second)
	loc := lastChunkLeader(t, clients[0], path, 10*time.Second)
	p := c.csIndex(loc.Primary)
	before, _ := acks.counts()
	t.Logf("kill -9 primary %s (cs%d) of chunk %d (handle %x v%d); %d appends acknowledged", loc.Primary, p, loc.Index, loc.Handle, loc.Version, before)
	c.cs[p].kill()
	killed := []string{loc.Primary}
	start := time.Now()
	waitAcks(t, acks, before+300, retryWindow)
	t.Logf("300 more appends acknowledged %v after the kill", time.Since(start).Round(time.Millisecond))

	loc = lastChunkLeader(t, clients[0], path, 10*time.Second)
	sec := -1
	for _, r := range loc.Replicas {
		if i := c.csIndex(r); r != loc.Primary && i >= 0 && c.cs[i].running() {
			sec = i
			break
		}
	}
	if sec < 0 {
		t.Fatalf("chunk %d has no live secondary: %+v", loc.Index, loc)
	}
	before, _ = acks.counts()
	t.Logf("kill -9 secondary %s (cs%d) of chunk %d (primary %s); %d appends acknowledged", c.csAddr[sec], sec, loc.Index, loc.Primary, before)
	c.cs[sec].kill()
	killed = append(killed, c.csAddr[sec])
	start = time.Now()
	waitAcks(t, acks, before+300, retryWindow)
	t.Logf("300 more appends acknowledged %v after the kill", time.Since(start).Round(time.Millisecond))

	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	acked, failed := acks.counts()
	t.Logf("%d appends acknowledged, %d failed", acked, failed)
	if failed > 0 {
		t.Errorf("%d appends failed although a new lease was granted within the retry window; first: %v", failed, acks.fails[0])
	}
	total := verifyRecords(t, clients[1], path, acks)
	t.Logf("record reader: %d records, every acknowledged one exactly once", total)
	took := waitReplication(t, clients[0], []string{path}, 3, killed, 60*time.Second)
	t.Logf("every chunk back to 3 live replicas %v after the appends stopped (bound 60s)", took.Round(time.Millisecond))
	verifyRecords(t, clients[2], path, acks)
}
