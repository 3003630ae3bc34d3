package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

// TestKilledSecondary: a secondary running in its own process is killed
// with SIGKILL; the next pushed write and the next inline write fail with
// an error naming it, and afterwards no replica (the dead one's store
// included) claims bytes it cannot serve verified.
func TestKilledSecondary(t *testing.T) {
	noLeaks(t)
	p := startServer(t, nil)
	s1 := startServer(t, nil)
	childDir := t.TempDir()
	c := startChild(t, childDir)
	addrs := []string{p.Addr(), s1.Addr(), c.addr}
	rs := newChunk(t, addrs, 0x70, 0)
	dc := newClient(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	first := randBytes(r, 1<<20)
	if err := dc.Write(ctx, addrs, p.Addr(), rs.handle, 1, 0, first, true); err != nil {
		t.Fatal(err)
	}

	c.kill()

	var re *dataclient.ReplicaError
	err := dc.Write(ctx, addrs, p.Addr(), rs.handle, 1, 1<<20, randBytes(r, 1<<20), false)
	if !errors.As(err, &re) || re.Addr != c.addr || !errors.Is(err, dataclient.ErrUnavailable) {
		t.Fatalf("pushed write with a dead replica: %v (want ErrUnavailable naming %s)", err, c.addr)
	}
	err = dc.Write(ctx, addrs, p.Addr(), rs.handle, 1, 1<<20, randBytes(r, 1000), false)
	if !errors.As(err, &re) || re.Addr != c.addr || !errors.Is(err, dataclient.ErrUnavailable) {
		t.Fatalf("inline write with a dead replica: %v (want ErrUnavailable naming %s)", err, c.addr)
	}

	// Live replicas serve, verified, every byte they claim; the first write
	// is intact on all of them.
	for _, a := range addrs[:2] {
		got := readAll(t, dc, a, rs.handle)
		if !bytes.Equal(got[:len(first)], first) {
			t.Fatalf("replica %s lost acknowledged data", a)
		}
	}
	// So does the dead replica's store, opened from its directory.
	st, err := store.Open(childDir, store.Options{ChunkSize: testChunkSize, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	info, err := st.Info(store.Handle(rs.handle))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, info.Length)
	if n, err := st.ReadAt(store.Handle(rs.handle), got, 0); int64(n) != info.Length || (err != nil && err != io.EOF) {
		t.Fatalf("dead replica claims %d bytes, serves %d verified: %v", info.Length, n, err)
	}
	if info.Length < int64(len(first)) || !bytes.Equal(got[:len(first)], first) {
		t.Fatalf("dead replica lost the acknowledged (synced) write: length %d", info.Length)
	}
}

// TestKilledPrimaryLosesNoAcknowledgedAppend: the primary (its own
// process) is killed with SIGKILL while clients append; every append it
// acknowledged is on both surviving secondaries, at the offset it named.
func TestKilledPrimaryLosesNoAcknowledgedAppend(t *testing.T) {
	noLeaks(t)
	c := startChild(t, t.TempDir())
	s1, s2 := startServer(t, nil), startServer(t, nil)
	addrs := []string{c.addr, s1.Addr(), s2.Addr()}
	rs := newChunk(t, addrs, 0x71, 0)
	dc := newClient(t)
	ctx := context.Background()

	type rec struct {
		off  int64
		data []byte
	}
	var mu sync.Mutex
	var acked []rec
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for {
				select {
				case <-stop:
					return
				default:
				}
				data := randBytes(r, 1+r.IntN(8<<10))
				off, err := dc.Append(ctx, addrs, c.addr, rs.handle, 1, data, false)
				if err != nil {
					return // the primary died
				}
				mu.Lock()
				acked = append(acked, rec{off, data})
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "some acknowledged appends", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 })
	c.kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, a := range []string{s1.Addr(), s2.Addr()} {
		got := readAll(t, dc, a, rs.handle)
		for _, r := range acked {
			if r.off+int64(len(r.data)) > int64(len(got)) || !bytes.Equal(got[r.off:r.off+int64(len(r.data))], r.data) {
				t.Fatalf("replica %s lost the acknowledged record at %d (%d bytes; replica has %d)", a, r.off, len(r.data), len(got))
			}
		}
	}
	t.Logf("%d acknowledged appends intact on both survivors", len(acked))
}
