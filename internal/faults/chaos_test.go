package faults

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

var (
	chaosDuration = flag.Duration("gfs.chaos", 0, "chaos soak duration (default $GFS_CHAOS_DURATION, else 20s)")
	chaosSeed     = flag.Uint64("gfs.chaos-seed", 0, "chaos soak seed (default $GFS_CHAOS_SEED, else random)")
)

// chaosSettings returns the soak's duration and seed from the flags, the
// environment, or the defaults.
func chaosSettings(t *testing.T) (time.Duration, uint64) {
	t.Helper()
	d := *chaosDuration
	if d == 0 {
		if s := os.Getenv("GFS_CHAOS_DURATION"); s != "" {
			var err error
			if d, err = time.ParseDuration(s); err != nil {
				t.Fatalf("GFS_CHAOS_DURATION=%q: %v", s, err)
			}
		}
	}
	if d == 0 {
		d = 20 * time.Second
	}
	seed := *chaosSeed
	if seed == 0 {
		if s := os.Getenv("GFS_CHAOS_SEED"); s != "" {
			var err error
			if seed, err = strconv.ParseUint(s, 0, 64); err != nil {
				t.Fatalf("GFS_CHAOS_SEED=%q: %v", s, err)
			}
		}
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	return d, seed
}

// Scenario 11: a seeded chaos soak. For the duration, chunkservers are
// killed (-9) and restarted at random (at most two of five down at once,
// so every chunk keeps a replica) while clients append records and write
// files. Then every chunkserver comes back, and the check: every
// acknowledged record present exactly once through the record reader,
// every acknowledged file intact, every chunk back to 3 replicas.
func TestChaosSoak(t *testing.T) {
	skipShort(t)
	dur, seed := chaosSettings(t)
	t.Logf("chaos soak: %v, seed %d (replay: GFS_CHAOS_SEED=%d GFS_CHAOS_DURATION=%v)", dur, seed, seed, dur)
	rng := rand.New(rand.NewPCG(seed, 11))
	c := startCluster(t, clusterOptions{chunkservers: 5, replication: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.dial(t)
	logs := []string{"/chaos/log0", "/chaos/log1"}
	acks := map[string]*ackLog{}
	for _, p := range logs {
		if err := cl.Create(ctx, p, client.CreateOptions{Parents: true}); err != nil {
			t.Fatal(err)
		}
		acks[p] = newAckLog()
	}
	files := newFileLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 12 {
		p := logs[g%len(logs)]
		size := 16 + int(rng.IntN(8000))
		wg.Go(func() { appender(ctx, cl, p, fmt.Sprintf("c%d", g), size, 0, acks[p], stop) })
	}
	for g := range 2 {
		p := logs[g%len(logs)]
		size := 16 + int(rng.IntN(4000))
		wg.Go(func() { streamAppender(ctx, cl, p, fmt.Sprintf("s%d", g), size, acks[p], stop) })
	}
	for g := range 2 {
		wseed := rng.Uint64() | 1
		wg.Go(func() { writer(ctx, cl, fmt.Sprintf("/chaos/w%d", g), wseed, files, stop) })
	}
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopLoad()

	deadline := time.Now().Add(dur)
	kills, restarts := 0, 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		var up, down []int
		for i, d := range c.cs {
			if d.running() {
				up = append(up, i)
			} else {
				down = append(down, i)
			}
		}
		if len(down) < 2 && (len(down) == 0 || rng.IntN(2) == 0) {
			i := up[rng.IntN(len(up))]
			t.Logf("%v: kill -9 cs%d", time.Until(deadline).Round(time.Second), i)
			c.cs[i].kill()
			kills++
		} else {
			i := down[rng.IntN(len(down))]
			t.Logf("%v: restart cs%d", time.Until(deadline).Round(time.Second), i)
			c.cs[i].start()
			restarts++
		}
	}
	for _, d := range c.cs {
		if !d.running() {
			d.start()
		}
	}
	c.waitServers(len(c.cs), 30*time.Second)
	// Let the load run a little on the whole cluster, then stop it.
	time.Sleep(time.Second)
	stopLoad()
	total := 0
	for _, p := range logs {
		a, f := acks[p].counts()
		total += a
		t.Logf("%s: %d appends acknowledged, %d failed", p, a, f)
		for i, err := range acks[p].fails {
			if i < 5 {
				t.Logf("append error: %v", err)
			}
		}
	}
	t.Logf("%d kills, %d restarts; %d appends acknowledged; %d files written, %d failed", kills, restarts, total, len(files.paths()), len(files.fails))
	for i, err := range files.fails {
		if i < 5 {
			t.Logf("write error: %v", err)
		}
	}
	checkLogs := func(cl *client.Client) {
		for _, p := range logs {
			if _, err := checkRecords(t, cl, p, acks[p]); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkLogs(cl)
	verifyFiles(t, cl, files)
	took := waitReplication(t, cl, append(files.paths(), logs...), 3, nil, 60*time.Second)
	t.Logf("every chunk at 3 live replicas %v after the chaos ended (bound 60s)", took.Round(time.Millisecond))
	// Once more after re-replication: the copies are right too.
	checkLogs(dialMaster(t, c.masterAddr))
}
