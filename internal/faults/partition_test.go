package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// netLab is a set of network namespaces, one per node, each with a veth
// pair into one bridge in the test's namespace: separate hosts with their
// own addresses, which the test (the client host) reaches through the
// bridge.
type netLab struct {
	t      *testing.T
	id     string
	subnet string // "10.200.S"
	bridge string
	nss    []string
}

func (l *netLab) run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetLab creates n namespaces or skips the test when it cannot.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed: cannot build network namespaces")
	}
	pid := os.Getpid()
	l := &netLab{t: t, id: fmt.Sprintf("%04x", pid&0xffff), subnet: fmt.Sprintf("10.200.%d", pid%250+1)}
	l.bridge = "gfb" + l.id
	t.Cleanup(l.destroy)
	if err := l.run("ip", "link", "add", l.bridge, "type", "bridge"); err != nil {
		t.Skipf("network namespaces unavailable here (needs root and CAP_NET_ADMIN): %v", err)
	}
	steps := [][]string{
		{"ip", "addr", "add", l.subnet + ".1/24", "dev", l.bridge},
		{"ip", "link", "set", l.bridge, "up"},
	}
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("gf%s-%d", l.id, i)
		l.nss = append(l.nss, ns)
		host, peer := fmt.Sprintf("gv%s%d", l.id, i), fmt.Sprintf("gp%s%d", l.id, i)
		steps = append(steps,
			[]string{"ip", "netns", "add", ns},
			[]string{"ip", "link", "add", host, "type", "veth", "peer", "name", peer},
			[]string{"ip", "link", "set", peer, "netns", ns},
			[]string{"ip", "-n", ns, "addr", "add", l.ip(i) + "/24", "dev", peer},
			[]string{"ip", "-n", ns, "link", "set", peer, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "set", host, "master", l.bridge},
			[]string{"ip", "link", "set", host, "up"},
		)
	}
	for _, s := range steps {
		if err := l.run(s...); err != nil {
			t.Skipf("network namespaces unavailable here: %v", err)
		}
	}
	return l
}

func (l *netLab) ip(i int) string { return fmt.Sprintf("%s.%d", l.subnet, 10+i) }

func (l *netLab) exec(i int) []string { return []string{"ip", "netns", "exec", l.nss[i]} }

// cut drops all traffic between nodes a and b (both directions), leaving
// both reachable from everyone else.
func (l *netLab) cut(a, b int) {
	l.t.Helper()
	for _, s := range [][]string{
		{"ip", "-n", l.nss[a], "route", "add", "blackhole", l.ip(b) + "/32"},
		{"ip", "-n", l.nss[b], "route", "add", "blackhole", l.ip(a) + "/32"},
	} {
		if err := l.run(s...); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *netLab) heal(a, b int) {
	l.t.Helper()
	for _, s := range [][]string{
		{"ip", "-n", l.nss[a], "route", "del", "blackhole", l.ip(b) + "/32"},
		{"ip", "-n", l.nss[b], "route", "del", "blackhole", l.ip(a) + "/32"},
	} {
		if err := l.run(s...); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *netLab) destroy() {
	for _, ns := range l.nss {
		_ = l.run("ip", "netns", "del", ns)
	}
	_ = l.run("ip", "link", "del", l.bridge)
}

// leaseSeen is one lease the master reported for a chunk.
type leaseSeen struct {
	primary string
	version uint64
	expiry  time.Time // master's view, latest seen
	first   time.Time // expiry when first seen: granted at first - LeaseTTL or later
	seen    time.Time
}

// leaseWatch polls the master for a file's chunk locations and records
// every lease it reports, by chunk handle.
type leaseWatch struct {
	mu     sync.Mutex
	leases map[uint64][]leaseSeen
}

func (w *leaseWatch) run(ctx context.Context, cl *client.Client, path string) {
	for ctx.Err() == nil {
		locs, err := cl.Chunks(ctx, path)
		now := time.Now()
		if err == nil {
			w.mu.Lock()
			for _, l := range locs {
				if l.Primary == "" {
					continue
				}
				ls := w.leases[l.Handle]
				if n := len(ls); n > 0 && ls[n-1].primary == l.Primary && ls[n-1].version == l.Version {
					if l.LeaseExpiry.After(ls[n-1].expiry) {
						ls[n-1].expiry = l.LeaseExpiry
					}
					continue
				}
				w.leases[l.Handle] = append(ls, leaseSeen{l.Primary, l.Version, l.LeaseExpiry, l.LeaseExpiry, now})
			}
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Millisecond):
		}
	}
}

// probeResult is one record append sent straight to the old primary.
type probeResult struct {
	start, end time.Time
	err        error
}

// Scenario 10: the primary is cut off from the master (network namespaces:
// master, chunkservers and the client are separate hosts). Clients can
// still reach it, and keep appending through it. It must stop accepting
// mutations by itself when its lease runs out; the master must not grant
// a new lease before the old one expired; no acknowledged append is lost;
// never two primaries for one chunk.
func TestPartitionedPrimary(t *testing.T) {
	skipShort(t)
	lab := newNetLab(t, 5) // node 0: master; nodes 1..4: chunkservers
	c := startCluster(t, clusterOptions{
		chunkservers: 4, replication: 3,
		masterAddr: lab.ip(0) + ":7000", masterPrefix: lab.exec(0),
		csAddr:   func(i int) string { return lab.ip(i+1) + ":7001" },
		csPrefix: func(i int) []string { return lab.exec(i + 1) },
	})
	node := func(addr string) int { return c.csIndex(addr) + 1 }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.dial(t)
	const path = "/part/log"
	if err := cl.Create(ctx, path, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	appender(ctx, cl, path, "warm", 100, 1, acks, nil)
	if n, _ := acks.counts(); n != 1 {
		t.Fatalf("first append: %v", acks.fails)
	}
	watch := &leaseWatch{leases: map[uint64][]leaseSeen{}}
	var bg sync.WaitGroup
	wctx, wcancel := context.WithCancel(ctx)
	bg.Go(func() { watch.run(wctx, cl, path) })
	defer func() { wcancel(); bg.Wait() }()

	// Paced appenders: the chunk must not fill before it needs a new lease.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				appender(ctx, cl, path, fmt.Sprintf("p%d-%d", g, i), 200, 1, acks, nil)
			}
		})
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

	waitAcks(t, acks, 50, 30*time.Second)
	old := lastChunkLeader(t, cl, path, 10*time.Second)
	p1 := node(old.Primary)
	cut := time.Now()
	lab.cut(0, p1)
	t.Logf("cut %s (primary of chunk %d, handle %x v%d) off the master", old.Primary, old.Index, old.Handle, old.Version)

	// A client with the old primary cached keeps appending straight to it.
	dc := dataclient.New(dataclient.Options{IOTimeout: 3 * time.Second})
	defer dc.Close()
	var probes []probeResult
	chain := append([]string{old.Primary}, old.Replicas...)
	chain = dedup(chain)
	var newer leaseSeen
	deadline := time.Now().Add(retryWindow)
	for seq := uint64(1); time.Now().Before(deadline); seq++ {
		id := fmt.Sprintf("probe-%d", seq)
		frame, err := client.EncodeRecord(nil, client.RecordID{Writer: 0xfeedface, Sequence: seq}, recordPayload(id, 100))
		if err != nil {
			t.Fatal(err)
		}
		pr := probeResult{start: time.Now()}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, pr.err = dc.Append(pctx, chain, old.Primary, old.Handle, old.Version, frame, false)
		pcancel()
		pr.end = time.Now()
		probes = append(probes, pr)
		if pr.err == nil {
			acks.ack(id, 100)
		}
		watch.mu.Lock()
		for _, l := range watch.leases[old.Handle] {
			if l.primary != old.Primary || l.version != old.Version {
				newer = l
			}
		}
		watch.mu.Unlock()
		if newer.primary != "" && time.Since(newer.seen) > time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if newer.primary == "" {
		t.Fatalf("no new lease for chunk %x within %v of the cut", old.Handle, retryWindow)
	}
	stopLoad()

	// The leases the master reported for the chunk.
	watch.mu.Lock()
	leases := append([]leaseSeen(nil), watch.leases[old.Handle]...)
	watch.mu.Unlock()
	var oldExpiry time.Time
	for _, l := range leases {
		t.Logf("lease of chunk %x: primary %s v%d until %s (first seen %s)", old.Handle, l.primary, l.version, l.expiry.Format("15:04:05.000"), l.seen.Format("15:04:05.000"))
		if l.primary == old.Primary && l.version == old.Version && l.expiry.After(oldExpiry) {
			oldExpiry = l.expiry
		}
	}
	// The master counts a lease from its grant; the first expiry seen is at
	// most one extension later than the grant's.
	granted := newer.first.Add(-leaseTTL)
	t.Logf("cut at %s; old lease ran until %s (master's view); new lease to %s v%d granted at %s",
		cut.Format("15:04:05.000"), oldExpiry.Format("15:04:05.000"), newer.primary, newer.version, granted.Format("15:04:05.000"))
	// LeaseExpiry travels in milliseconds: allow that rounding.
	if granted.Before(oldExpiry.Add(-2 * time.Millisecond)) {
		t.Errorf("the master granted a new lease at %s before the old one expired at %s", granted.Format("15:04:05.000"), oldExpiry.Format("15:04:05.000"))
	}
	if newer.version <= old.Version {
		t.Errorf("new lease at version %d, not above the old %d", newer.version, old.Version)
	}
	// The old primary stopped on its own: no success after the old lease
	// ended, and refusals that say it is no longer the primary.
	var ok, notPrimary, other int
	for _, p := range probes {
		switch {
		case p.err == nil:
			ok++
			if p.start.After(oldExpiry) {
				t.Errorf("old primary accepted an append started at %s, after its lease expired at %s", p.start.Format("15:04:05.000"), oldExpiry.Format("15:04:05.000"))
			}
		case errors.Is(p.err, dataclient.ErrNotPrimary):
			notPrimary++
		default:
			other++
			if p.start.After(oldExpiry) {
				t.Logf("probe after expiry: %v", p.err)
			}
		}
	}
	t.Logf("appends straight to the cut-off primary: %d accepted, %d refused as not primary, %d other errors", ok, notPrimary, other)
	if notPrimary == 0 {
		t.Errorf("the cut-off primary never refused as not primary")
	}

	lab.heal(0, p1)
	acked, failed := acks.counts()
	t.Logf("%d appends acknowledged, %d failed", acked, failed)
	for _, err := range acks.fails {
		t.Errorf("append surfaced an error: %v", err)
	}
	verifyRecords(t, cl, path, acks)
	took := waitReplication(t, cl, []string{path}, 3, nil, 30*time.Second)
	t.Logf("healed; every chunk at 3 replicas %v later", took.Round(time.Millisecond))
	verifyRecords(t, dialMaster(t, c.masterAddr), path, acks)
}

func dedup(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
