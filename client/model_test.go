package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// TestWriteReadModel applies random writes (spanning chunks, past the end,
// overlapping) to a file and to an in-memory model, then compares whole and
// random partial reads.
func TestWriteReadModel(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	if err := c.Create(ctx, "/m", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Open(ctx, "/m")
	rng := rand.New(rand.NewPCG(77, 1))
	var model []byte
	for i := 0; i < 25; i++ {
		off := rng.Int64N(6 * testChunkSize)
		n := 1 + rng.IntN(5*testChunkSize/2)
		p := randomBytes(uint64(100+i), n)
		if _, err := f.WriteAtContext(ctx, p, off); err != nil {
			t.Fatalf("write %d at %d (+%d): %v", i, off, n, err)
		}
		if end := off + int64(n); end > int64(len(model)) {
			model = append(model, make([]byte, end-int64(len(model)))...)
		}
		copy(model[off:], p)
	}
	if n, err := f.Length(ctx); err != nil || n != int64(len(model)) {
		t.Fatalf("Length = %d, %v; model %d", n, err, len(model))
	}
	whole := make([]byte, len(model)+100)
	n, err := f.ReadAtContext(ctx, whole, 0)
	if n != len(model) || !errors.Is(err, io.EOF) || !bytes.Equal(whole[:n], model) {
		t.Fatalf("whole read: %d, %v (equal %v)", n, err, bytes.Equal(whole[:n], model))
	}
	for i := 0; i < 50; i++ {
		off := rng.Int64N(int64(len(model)))
		p := make([]byte, 1+rng.IntN(3*testChunkSize))
		n, err := f.ReadAtContext(ctx, p, off)
		want := model[off:min(off+int64(len(p)), int64(len(model)))]
		if n != len(want) || !bytes.Equal(p[:n], want) {
			t.Fatalf("read at %d (+%d): %d bytes, equal %v", off, len(p), n, bytes.Equal(p[:n], want))
		}
		if n < len(p) && !errors.Is(err, io.EOF) {
			t.Fatalf("short read at %d without io.EOF: %v", off, err)
		}
		if n == len(p) && err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
}

// TestRecordAppendThroughChunkserverFailure stops a chunkserver while
// appenders run: appends retry (possibly leaving duplicates and torn
// fragments on the surviving replicas) and every acknowledged record is read
// back exactly once.
func TestRecordAppendThroughChunkserverFailure(t *testing.T) {
	opts := clusterOptions(t)
	opts.Chunkservers = 4
	cl, c := startCluster(t, opts)
	ctx := testCtx(t)
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const writers = 6
	var mu sync.Mutex
	acked := map[string]int{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := fmt.Sprintf("w%d-%d-%s", w, i, bytes.Repeat([]byte{'a' + byte(w)}, 100+(i*37)%5000))
				if _, err := c.RecordAppend(ctx, "/log", []byte(rec)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[rec]++
				mu.Unlock()
			}
		}()
	}
	waitCount := func(n int) {
		for {
			mu.Lock()
			got := len(acked)
			mu.Unlock()
			if got >= n {
				return
			}
			select {
			case err := <-errs:
				t.Fatal(err)
			default:
			}
			if ctx.Err() != nil {
				t.Fatal("appends made no progress")
			}
			pause()
		}
	}
	waitCount(200)
	// Stop the primary of the chunk being appended to.
	locs, err := c.Chunks(ctx, "/log")
	if err != nil {
		t.Fatal(err)
	}
	last := locs[len(locs)-1]
	victim := 0
	for i, a := range cl.ChunkserverAddrs() {
		if a == last.Primary || (last.Primary == "" && len(last.Replicas) > 0 && a == last.Replicas[0]) {
			victim = i
		}
	}
	if err := cl.StopChunkserver(victim); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	waitCount(before + 300)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	rr := c.NewRecordReader(ctx, "/log")
	defer rr.Close()
	seen := map[string]int{}
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[string(rec.Data)]++
	}
	for rec := range acked {
		if seen[rec] != 1 {
			t.Fatalf("acknowledged record %.20q read %d times", rec, seen[rec])
		}
	}
	t.Logf("%d records acknowledged, %d distinct read back, chunkserver %d stopped", len(acked), len(seen), victim)
}

// pause yields while polling a counter the appenders advance.
func pause() { time.Sleep(time.Millisecond) }
