package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
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
