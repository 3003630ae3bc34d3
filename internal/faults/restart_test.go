package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
)

// fileLog remembers the files whose write was acknowledged and their
// contents' seeds.
type fileLog struct {
	mu    sync.Mutex
	files map[string]fileWant
	fails []error
	short map[string]fileWant // acknowledged, then read back wrong
}

type fileWant struct {
	seed uint64
	size int
}

func newFileLog() *fileLog { return &fileLog{files: map[string]fileWant{}} }

func (l *fileLog) paths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for p := range l.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (l *fileLog) fail(err error) {
	l.mu.Lock()
	l.fails = append(l.fails, err)
	l.mu.Unlock()
}

// writer creates files named prefix-N of random size (up to 3 chunks)
// and writes each with one WriteAt until stop; acknowledged files are read
// back at once and recorded. A read-back that fails (no replica reachable
// right now) is a failure of its own, but the file was acknowledged: it is
// recorded too, and checked once the servers are back.
func writer(ctx context.Context, cl *client.Client, prefix string, seed uint64, l *fileLog, stop <-chan struct{}) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		path := fmt.Sprintf("%s-%d", prefix, i)
		size := 1 + r.IntN(3*chunkSize)
		fseed := seed<<20 | uint64(i)
		data := pattern(fseed, size)
		wctx, cancel := context.WithTimeout(ctx, 2*retryWindow)
		err := writeFile(wctx, cl, path, data)
		if err == nil {
			var got []byte
			got, err = readAll(wctx, cl, path)
			if err != nil && ctx.Err() == nil {
				l.mu.Lock()
				l.files[path] = fileWant{fseed, size}
				l.mu.Unlock()
			}
			if err == nil && string(got) != string(data) {
				err = fmt.Errorf("read back %s: %d bytes differ from the %d written (first at %d)", path, len(got), len(data), firstDiff(got, data))
				l.mu.Lock()
				if l.short == nil {
					l.short = map[string]fileWant{}
				}
				l.short[path] = fileWant{fseed, size}
				l.mu.Unlock()
			}
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.fail(err)
			continue
		}
		l.mu.Lock()
		l.files[path] = fileWant{fseed, size}
		l.mu.Unlock()
	}
}

// writeFile creates path and writes data into it. Namespace calls are not
// retried by the client library (a Create whose answer was lost may have
// happened): like an application, writeFile retries retriable failures
// and accepts ErrExists on a retry.
func writeFile(ctx context.Context, cl *client.Client, path string, data []byte) error {
	for attempt := 0; ; attempt++ {
		err := cl.Create(ctx, path, client.CreateOptions{Parents: true})
		if err == nil || (attempt > 0 && errors.Is(err, client.ErrExists)) {
			break
		}
		if !control.Retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	f, err := cl.Open(ctx, path)
	if err != nil {
		return err
	}
	_, err = f.WriteAtContext(ctx, data, 0)
	return err
}

// verifyFiles reads every acknowledged file back, and diagnoses the files
// whose write was acknowledged but whose immediate read-back was wrong.
func verifyFiles(t *testing.T, cl *client.Client, l *fileLog) {
	t.Helper()
	l.mu.Lock()
	files := maps(l.files)
	short := maps(l.short)
	l.mu.Unlock()
	for p, w := range short {
		t.Errorf("%s: write acknowledged but read back wrong right after", p)
		diagnoseFile(t, cl, p, pattern(w.seed, w.size))
	}
	for p, w := range files {
		checkFile(t, cl, p, pattern(w.seed, w.size))
	}
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Scenario 3: every chunkserver restarted in turn (SIGTERM, start again on
// the same directory and address) while appenders and writers run. No
// acknowledged data is lost and no caller sees an error: the client
// retries through each restart by itself.
func TestRollingRestartsUnderLoad(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 4, replication: 3})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := c.dial(t)
	const logPath = "/mixed/log"
	if err := cl.Create(ctx, logPath, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	files := newFileLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() { appender(ctx, cl, logPath, fmt.Sprintf("a%d", g), 100+g*300, 0, acks, stop) })
	}
	for g := range 2 {
		wg.Go(func() { writer(ctx, cl, fmt.Sprintf("/mixed/w%d", g), uint64(g+1), files, stop) })
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
	for i := range c.cs {
		before, _ := acks.counts()
		t.Logf("restart cs%d (%s); %d appends acknowledged, %d files written", i, c.csAddr[i], before, len(files.paths()))
		c.cs[i].stop()
		time.Sleep(2 * deadAfter) // long enough for the master to notice
		c.cs[i].start()
		c.waitServers(len(c.cs), 30*time.Second)
		waitAcks(t, acks, before+50, retryWindow)
	}
	stopLoad()
	acked, failed := acks.counts()
	t.Logf("%d appends acknowledged, %d failed; %d files written, %d failed", acked, failed, len(files.paths()), len(files.fails))
	for _, err := range acks.fails {
		t.Errorf("append surfaced an error: %v", err)
	}
	for _, err := range files.fails {
		t.Errorf("write surfaced an error: %v", err)
	}
	verifyRecords(t, cl, logPath, acks)
	verifyFiles(t, cl, files)
	took := waitReplication(t, cl, append(files.paths(), logPath), 3, nil, 60*time.Second)
	t.Logf("every chunk at 3 live replicas %v after the load stopped", took.Round(time.Millisecond))
}

// chunkState is what the master says about a chunk, for comparison across
// restarts.
type chunkState struct {
	handle, version uint64
	replicas        []string
}

func snapshotChunks(t *testing.T, cl *client.Client, paths []string) map[string][]chunkState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]chunkState{}
	for _, p := range paths {
		locs, err := cl.Chunks(ctx, p)
		if err != nil {
			t.Fatalf("chunks of %s: %v", p, err)
		}
		for _, l := range locs {
			rs := slices.Clone(l.Replicas)
			slices.Sort(rs)
			out[p] = append(out[p], chunkState{l.Handle, l.Version, rs})
		}
	}
	return out
}

// Scenario 4: every chunkserver killed (-9) and started again from its
// directory: the chunks, their versions and their data survive.
func TestAllChunkserversRestartFromDisk(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 3, replication: 3})
	ctx := context.Background()
	cl := c.dial(t)
	want := map[string][]byte{}
	for i, size := range []int{1, chunkSize - 1, chunkSize, 2*chunkSize + 777, 4*chunkSize + 65537} {
		p := fmt.Sprintf("/keep/f%d", i)
		want[p] = pattern(uint64(100+i), size)
		if err := writeFile(ctx, cl, p, want[p]); err != nil {
			t.Fatal(err)
		}
	}
	const logPath = "/keep/log"
	if err := cl.Create(ctx, logPath, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	acks := newAckLog()
	appender(ctx, cl, logPath, "r", 5000, 300, acks, nil)
	paths := append(slices.Sorted(mapKeys(want)), logPath)
	waitReplication(t, cl, paths, 3, nil, 30*time.Second)
	before := snapshotChunks(t, cl, paths)

	for _, d := range c.cs {
		d.kill()
	}
	// With every replica gone, a read fails (it must not hang or return
	// made-up bytes).
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	start := time.Now()
	_, err := readAll(rctx, cl, "/keep/f4")
	rcancel()
	if err == nil {
		t.Fatal("read succeeded with every chunkserver dead")
	}
	t.Logf("read with every chunkserver down failed after %v: %v", time.Since(start).Round(time.Millisecond), err)

	for _, d := range c.cs {
		d.start()
	}
	c.waitServers(3, 30*time.Second)
	took := waitReplication(t, cl, paths, 3, nil, 30*time.Second)
	t.Logf("every chunk back at 3 replicas %v after the restart", took.Round(time.Millisecond))
	after := snapshotChunks(t, cl, paths)
	for _, p := range paths {
		if len(before[p]) != len(after[p]) {
			t.Fatalf("%s: %d chunks before the restart, %d after", p, len(before[p]), len(after[p]))
		}
		for i, b := range before[p] {
			a := after[p][i]
			if a.handle != b.handle || a.version != b.version {
				t.Errorf("%s chunk %d: handle %x v%d before the restart, %x v%d after", p, i, b.handle, b.version, a.handle, a.version)
			}
			if !slices.Equal(a.replicas, b.replicas) {
				t.Errorf("%s chunk %d: replicas %v before the restart, %v after", p, i, b.replicas, a.replicas)
			}
		}
	}
	for p, data := range want {
		checkFile(t, cl, p, data)
	}
	verifyRecords(t, cl, logPath, acks)
	// Every replica, read on its own, holds the whole chunk.
	for _, p := range paths {
		locs, err := cl.Chunks(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			var lengths []int64
			for _, r := range l.Replicas {
				n, err := cl.VerifyReplica(ctx, l, r)
				if err != nil {
					t.Errorf("%s chunk %d on %s: %v", p, l.Index, r, err)
				}
				lengths = append(lengths, n)
			}
			if slices.Min(lengths) != slices.Max(lengths) {
				t.Errorf("%s chunk %d: replica lengths differ: %v", p, l.Index, lengths)
			}
		}
	}
	// And the cluster keeps working: a new append gets a new lease (a
	// higher version) on the restarted servers.
	appender(ctx, cl, logPath, "after", 100, 20, acks, nil)
	if _, failed := acks.counts(); failed > 0 {
		t.Fatalf("appends after the restart failed: %v", acks.fails)
	}
	verifyRecords(t, cl, logPath, acks)
	last := snapshotChunks(t, cl, []string{logPath})[logPath]
	prev := before[logPath]
	if len(last) >= len(prev) && last[len(prev)-1].version < prev[len(prev)-1].version {
		t.Errorf("log chunk version went back: %v -> %v", prev, last)
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
