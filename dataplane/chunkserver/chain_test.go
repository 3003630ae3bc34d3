package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestWriteReadChain writes pushed and inline data through a chain of three
// and reads it back, verified, from every replica.
func TestWriteReadChain(t *testing.T) {
	for _, mode := range []SendMode{SendFile, SendCopy} {
		t.Run([]string{SendFile: "sendfile", SendCopy: "copy"}[mode], func(t *testing.T) { testWriteReadChain(t, mode) })
	}
}

func testWriteReadChain(t *testing.T, mode SendMode) {
	noLeaks(t)
	withMode := func(o *Options) { o.SendMode = mode }
	servers := []*Server{startServer(t, withMode), startServer(t, withMode), startServer(t, withMode)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x10, 1)
	dc := newClient(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))

	big := randBytes(r, 3<<20+12345) // pushed along the chain
	if err := dc.Write(ctx, addrs, rs.primaryAddr(), rs.handle, rs.version, 0, big, false); err != nil {
		t.Fatal(err)
	}
	small := randBytes(r, 3000) // inline, unaligned, overwriting inside
	if err := dc.Write(ctx, addrs, rs.primaryAddr(), rs.handle, rs.version, 70000, small, true); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), big...)
	copy(want[70000:], small)
	for _, a := range addrs {
		if got := readAll(t, dc, a, rs.handle); !bytes.Equal(got, want) {
			t.Fatalf("replica %s differs from what was written", a)
		}
		// Unaligned partial reads are verified and exact.
		p := make([]byte, 100001)
		n, err := dc.Read(ctx, a, rs.handle, rs.version, 65535, p)
		if err != nil || n != len(p) || !bytes.Equal(p, want[65535:65535+len(p)]) {
			t.Fatalf("partial read from %s: n=%d err=%v", a, n, err)
		}
		// Reading across the end returns the rest with io.EOF.
		n, err = dc.Read(ctx, a, rs.handle, rs.version, int64(len(want)-10), p)
		if n != 10 || err == nil || !bytes.Equal(p[:10], want[len(want)-10:]) {
			t.Fatalf("read at end from %s: n=%d err=%v", a, n, err)
		}
	}
	for _, s := range servers {
		if s.pushes.len() != 0 {
			t.Fatalf("%s still buffers %d pushes after the write", s.Addr(), s.pushes.len())
		}
	}
}

// TestConcurrentAppendsAndWrites: many clients append records and write
// disjoint regions at once; afterwards the replicas are byte-identical,
// every acknowledged record is where the primary said on every replica,
// and the chunk that overflowed is padded everywhere.
func TestConcurrentAppendsAndWrites(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	appendSet := newChunk(t, addrs, 0x20, 0)
	writeSet := newChunk(t, addrs, 0x21, 2)
	dc := newClient(t)
	ctx := context.Background()

	type rec struct {
		off  int64
		data []byte
	}
	var mu sync.Mutex
	var recs []rec
	fullSeen := 0
	var wg sync.WaitGroup
	errc := make(chan error, 32)
	for w := 0; w < 8; w++ {
		wg.Add(2)
		go func() { // appender: until the chunk is full
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				data := randBytes(r, 1+r.IntN(200<<10))
				off, err := dc.Append(ctx, addrs, addrs[0], appendSet.handle, appendSet.version, data, r.IntN(4) == 0)
				if errors.Is(err, dataclient.ErrChunkFull) {
					mu.Lock()
					fullSeen++
					mu.Unlock()
					return
				}
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				recs = append(recs, rec{off, data})
				mu.Unlock()
			}
		}()
		go func() { // writer: its own 256 KiB stripe, several overwrites
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 8))
			for i := 0; i < 4; i++ {
				n := 1 + r.IntN(256<<10)
				if err := dc.Write(ctx, addrs, addrs[2], writeSet.handle, writeSet.version, int64(w)<<18, randBytes(r, n), false); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if fullSeen != 8 {
		t.Fatalf("%d appenders saw ErrChunkFull, want 8", fullSeen)
	}
	for _, h := range []uint64{appendSet.handle, writeSet.handle} {
		first := readAll(t, dc, addrs[0], h)
		for _, a := range addrs[1:] {
			if got := readAll(t, dc, a, h); !bytes.Equal(got, first) {
				t.Fatalf("chunk %x: replica %s differs from %s (%d vs %d bytes)", h, a, addrs[0], len(got), len(first))
			}
		}
		if h == appendSet.handle {
			if len(first) != testChunkSize {
				t.Fatalf("full chunk is %d bytes, want padded to %d", len(first), testChunkSize)
			}
			for _, r := range recs {
				if !bytes.Equal(first[r.off:r.off+int64(len(r.data))], r.data) {
					t.Fatalf("record at %d not found on the replicas", r.off)
				}
			}
		}
	}
}

// TestStaleVersionRefused: a secondary that missed a version bump refuses
// the primary's round, and the client's error names it.
func TestStaleVersionRefused(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x30, 0)
	dc := newClient(t)
	ctx := context.Background()
	// Bump to version 2 on the first two replicas only; lease at 2.
	for i := 0; i < 2; i++ {
		if _, err := rs.ctls[i].SetVersion(ctx, setVersion(rs.handle, 1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rs.ctls[0].GrantLease(ctx, grantLease(rs.handle, 2, 60000, addrs[1:]...)); err != nil {
		t.Fatal(err)
	}
	err := dc.Write(ctx, addrs, addrs[0], rs.handle, 2, 0, []byte("hello"), false)
	var re *dataclient.ReplicaError
	if !errors.Is(err, dataclient.ErrStaleVersion) || !errors.As(err, &re) || re.Addr != addrs[2] {
		t.Fatalf("write with a stale secondary: %v (want ErrStaleVersion naming %s)", err, addrs[2])
	}
	// A client with the old version is refused by the primary.
	err = dc.Write(ctx, addrs, addrs[0], rs.handle, 1, 0, []byte("hello"), false)
	if !errors.Is(err, dataclient.ErrNotPrimary) {
		t.Fatalf("write at old version: %v, want ErrNotPrimary", err)
	}
	// The stale replica changed nothing.
	if n, err := dc.Length(ctx, addrs[2], rs.handle, 0); err != nil || n != 0 {
		t.Fatalf("stale replica length %d, %v", n, err)
	}
}

// TestStaleChainRefused: the primary takes a mutation only when its chain
// names exactly the replicas its lease was granted with (in any order): a
// chain missing one, or naming another, is refused before anything
// changes, so no replica of the lease misses an acknowledged mutation.
func TestStaleChainRefused(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs[:3], 0x35, 0)
	if _, err := dialCtl(t, addrs[3]).CreateChunk(context.Background(), &controlpb.CreateChunkRequest{Handle: rs.handle, Version: 1}); err != nil {
		t.Fatal(err)
	}
	dc := newClient(t)
	ctx := context.Background()
	for _, chain := range [][]string{
		{addrs[0], addrs[1]},                     // one missing
		{addrs[0], addrs[1], addrs[3]},           // another instead
		{addrs[0], addrs[1], addrs[2], addrs[3]}, // one too many
		{addrs[0], addrs[1], addrs[1]},           // one twice
	} {
		for _, op := range []string{"write", "append"} {
			var err error
			if op == "write" {
				err = dc.Write(ctx, chain, addrs[0], rs.handle, 1, 0, []byte("refused"), false)
			} else {
				_, err = dc.Append(ctx, chain, addrs[0], rs.handle, 1, []byte("refused"), false)
			}
			if !errors.Is(err, dataclient.ErrStaleChain) {
				t.Fatalf("%s with chain %v: %v, want ErrStaleChain", op, chain, err)
			}
		}
	}
	for _, a := range addrs {
		if n, err := dc.Length(ctx, a, rs.handle, 0); err != nil || n != 0 {
			t.Fatalf("%s after refused mutations: length %d, %v", a, n, err)
		}
	}
	// The lease's replicas in another order are fine.
	if err := dc.Write(ctx, []string{addrs[2], addrs[0], addrs[1]}, addrs[0], rs.handle, 1, 0, []byte("taken"), false); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs[:3] {
		if got := readAll(t, dc, a, rs.handle); string(got) != "taken" {
			t.Fatalf("%s holds %q", a, got)
		}
	}
}

// TestWrongPrimaryRefused: a non-primary refuses mutations, and a
// secondary that already follows one primary at a version refuses rounds
// from another server claiming to be primary at the same version.
func TestWrongPrimaryRefused(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x40, 0)
	dc := newClient(t)
	ctx := context.Background()
	if err := dc.Write(ctx, addrs, addrs[1], rs.handle, 1, 0, []byte("x"), false); !errors.Is(err, dataclient.ErrNotPrimary) {
		t.Fatalf("write to a non-primary: %v", err)
	}
	if err := dc.Write(ctx, addrs, addrs[0], rs.handle, 1, 0, []byte("first"), false); err != nil {
		t.Fatal(err)
	}
	// Split brain forced by the test: a second lease at the same version.
	if _, err := rs.ctls[1].GrantLease(ctx, grantLease(rs.handle, 1, 60000, addrs[2])); err != nil {
		t.Fatal(err)
	}
	err := dc.Write(ctx, []string{addrs[1], addrs[2]}, addrs[1], rs.handle, 1, 0, []byte("second"), false)
	var re *dataclient.ReplicaError
	if !errors.Is(err, dataclient.ErrNotPrimary) || !errors.As(err, &re) || re.Addr != addrs[2] {
		t.Fatalf("round from a second primary: %v (want ErrNotPrimary naming %s)", err, addrs[2])
	}
	got := make([]byte, 5)
	if _, err := dc.Read(ctx, addrs[2], rs.handle, 1, 0, got); err != nil || string(got) != "first" {
		t.Fatalf("secondary holds %q, %v", got, err)
	}
}

// TestCorruptionCaughtEndToEnd: a byte flipped in a chunk file on disk is
// sent with the stored checksum and caught by the client, naming the
// replica and block.
func TestCorruptionCaughtEndToEnd(t *testing.T) {
	noLeaks(t)
	s := startServer(t, func(o *Options) { o.SendMode = SendFile })
	rs := newChunk(t, []string{s.Addr()}, 0x11, 0)
	dc := newClient(t)
	ctx := context.Background()
	data := randBytes(rand.New(rand.NewPCG(9, 9)), 300000)
	if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), rs.handle, 1, 0, data, true); err != nil {
		t.Fatal(err)
	}
	rng, err := s.store.OpenRange(store.Handle(rs.handle), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := rng.File.Name()
	rng.Release()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[70000] ^ 0x40}, 70000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := make([]byte, 10)
	_, err = dc.Read(ctx, s.Addr(), rs.handle, 1, 65536+10, p) // block 1, not the flipped byte itself
	var ce *dataclient.ChecksumError
	if !errors.As(err, &ce) || ce.Addr != s.Addr() || ce.Block != 1 || ce.Handle != rs.handle {
		t.Fatalf("read of a corrupted block: %v", err)
	}
	if _, err := dc.Read(ctx, s.Addr(), rs.handle, 1, 0, p); err != nil {
		t.Fatalf("read of an intact block: %v", err)
	}
}

// TestGroupCommit: appends arriving while a round runs are all carried by
// the next round (one store write and one apply per replica for all).
func TestGroupCommit(t *testing.T) {
	noLeaks(t)
	rb := newRoundBlocker()
	servers := []*Server{startServer(t, rb.hook), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x12, 0)
	dc := newClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 11)
	appendOne := func() {
		defer wg.Done()
		if _, err := dc.Append(ctx, addrs, addrs[0], rs.handle, 1, []byte("record"), false); err != nil {
			errc <- err
		}
	}
	wg.Add(1)
	go appendOne()
	waitFor(t, "the first round", func() bool { return len(rb.sizes()) == 1 })
	q := servers[0].seqs.get(store.Handle(rs.handle))
	wg.Add(10)
	for i := 0; i < 10; i++ {
		go appendOne()
	}
	waitFor(t, "10 queued appends", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.pending) == 10 })
	close(rb.release)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if rounds := rb.sizes(); len(rounds) != 2 || rounds[1] != 10 {
		t.Fatalf("rounds %v, want [1 10]", rounds)
	}
	for _, a := range addrs {
		if n, err := dc.Length(ctx, a, rs.handle, 1); err != nil || n != 11*int64(len("record")) {
			t.Fatalf("replica %s length %d, %v", a, n, err)
		}
	}
}

// TestPiecedWrite: a pushed write larger than the client's piece size goes
// as pipelined write rounds; one reaching past the chunk changes nothing;
// a secondary failing in the middle fails the write naming it, and a
// cancelled context stops it.
func TestPiecedWrite(t *testing.T) {
	noLeaks(t)
	var rounds atomic.Int32
	var onRound atomic.Value // func(n int32)
	onRound.Store(func(int32) {})
	hook := func(o *Options) {
		o.testRoundHook = func(store.Handle, int) { onRound.Load().(func(int32))(rounds.Add(1)) }
	}
	servers := []*Server{startServer(t, hook), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	dc := dataclient.New(dataclient.Options{IOTimeout: 20 * time.Second, WritePieceBytes: 256 << 10})
	t.Cleanup(func() { dc.Close() })
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))

	// Whole write: 9 pieces, the last one partial, synced.
	rs := newChunk(t, addrs, 0x30, 0)
	data := randBytes(r, 2<<20+1234)
	if err := dc.Write(ctx, addrs, addrs[0], rs.handle, 1, 4096, data, true); err != nil {
		t.Fatal(err)
	}
	if n := rounds.Load(); n != 9 {
		t.Fatalf("%d rounds for a write of 9 pieces", n)
	}
	want := append(make([]byte, 4096), data...)
	for _, a := range addrs {
		if got := readAll(t, dc, a, rs.handle); !bytes.Equal(got, want) {
			t.Fatalf("replica %s differs from what was written", a)
		}
	}

	// Reaching past the chunk: refused before any byte changed (the last
	// piece goes first).
	rs = newChunk(t, addrs, 0x33, 0)
	rounds.Store(0)
	err := dc.Write(ctx, addrs, addrs[0], rs.handle, 1, testChunkSize-2<<20, data, false)
	if !errors.Is(err, dataclient.ErrOutOfRange) {
		t.Fatalf("pieced write past the chunk's end: %v", err)
	}
	for _, a := range addrs {
		if n, err := dc.Length(ctx, a, rs.handle, 1); err != nil || n != 0 {
			t.Fatalf("replica %s length %d after a refused write, %v", a, n, err)
		}
	}

	// Cancelled in the third round: the context's error, no more rounds.
	rs = newChunk(t, addrs, 0x31, 0)
	rounds.Store(0)
	cctx, cancel := context.WithCancel(ctx)
	onRound.Store(func(n int32) {
		if n == 3 {
			cancel()
		}
	})
	err = dc.Write(cctx, addrs, addrs[0], rs.handle, 1, 0, data, false)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pieced write: %v", err)
	}
	if n := rounds.Load(); n > 3 {
		t.Fatalf("%d rounds after cancelling in round 3", n)
	}

	// A secondary gone after the second round: the error names it.
	rs = newChunk(t, addrs, 0x32, 0)
	rounds.Store(0)
	onRound.Store(func(n int32) {
		if n == 2 {
			servers[2].Close()
		}
	})
	err = dc.Write(ctx, addrs, addrs[0], rs.handle, 1, 0, data, false)
	var re *dataclient.ReplicaError
	if !errors.As(err, &re) || re.Addr != addrs[2] {
		t.Fatalf("pieced write with a secondary gone: %v, want an error naming %s", err, addrs[2])
	}
	for _, a := range addrs[:2] {
		got := readAll(t, dc, a, rs.handle)
		if len(got) != len(data) {
			t.Fatalf("replica %s length %d, want %d (the last piece went first)", a, len(got), len(data))
		}
		for i := range got {
			if got[i] != data[i] && got[i] != 0 {
				t.Fatalf("replica %s byte %d is neither written nor zero", a, i)
			}
		}
	}
}
