package dataclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// fakeServer speaks just enough of the data protocol for client tests:
// it reads request frames and lets handle write the answer.
type fakeServer struct {
	lis     net.Listener
	accepts atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

type fakeHandler func(w io.Writer, h wire.Header, meta, payload []byte)

func startFake(t testing.TB, handle fakeHandler) *fakeServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{lis: lis}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := lis.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			f.mu.Lock()
			f.conns = append(f.conns, nc)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer nc.Close()
				for {
					var hb [wire.HeaderSize]byte
					if _, err := io.ReadFull(nc, hb[:]); err != nil {
						return
					}
					h, err := wire.DecodeHeader(hb[:])
					if err != nil {
						return
					}
					rest := make([]byte, int(h.CapLen)+int(h.MetaLen)+int(h.PayloadLen))
					if _, err := io.ReadFull(nc, rest); err != nil {
						return
					}
					handle(nc, h, rest[h.CapLen:int(h.CapLen)+int(h.MetaLen)], rest[int(h.CapLen)+int(h.MetaLen):])
				}
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func answer(w io.Writer, req wire.Header, st wire.Status, m interface{ Append([]byte) []byte }, payload []byte) {
	h := wire.Header{Op: req.Op, Flags: wire.FlagResponse, RequestID: req.RequestID, Status: st, PayloadLen: uint32(len(payload))}
	b := wire.AppendRequest(nil, &h, nil, m)
	_, _ = w.Write(append(b, payload...))
}

// chunk is the fake's content: 3.5 blocks.
var chunk = func() []byte {
	b := make([]byte, 3*BlockSize+BlockSize/2)
	for i := range b {
		b[i] = byte(i*31 + i>>9)
	}
	return b
}()

// serveChunk answers reads of chunk like a chunkserver; corrupt flips a
// byte of the given block in what it sends (-1: none).
func serveChunk(corrupt int) fakeHandler {
	if corrupt < 0 {
		return serveData(chunk)
	}
	return serveData(chunk, corrupt)
}

// serveData answers reads of content like a chunkserver, flipping a byte
// of each corrupt block in what it sends.
func serveData(content []byte, corrupt ...int) fakeHandler {
	return func(w io.Writer, h wire.Header, meta, _ []byte) {
		var req wire.ReadRequest
		if err := req.Decode(meta); err != nil {
			answer(w, h, wire.StatusBadRequest, &wire.ErrorResponse{Message: "bad"}, nil)
			return
		}
		n := int64(len(content))
		if req.Offset >= n {
			answer(w, h, wire.StatusOK, &wire.ReadResponse{ChunkLength: n}, nil)
			return
		}
		start := req.Offset / BlockSize * BlockSize
		end := min((req.Offset+req.Length+BlockSize-1)/BlockSize*BlockSize, n)
		data := append([]byte(nil), content[start:end]...)
		var sums []uint64
		for bs := start; bs < end; bs += BlockSize {
			sums = append(sums, xxhash.Sum64(content[bs:min(bs+BlockSize, end)]))
		}
		for _, b := range corrupt {
			if int64(b)*BlockSize >= start && int64(b)*BlockSize < end {
				data[int64(b)*BlockSize-start+100] ^= 1
			}
		}
		answer(w, h, wire.StatusOK, &wire.ReadResponse{ChunkLength: n, RangeOffset: start, Sums: sums}, data)
	}
}

// TestReadVerifiesLarge covers reads big enough to be verified on a second
// goroutine while the next group is received: content, partial edge
// blocks, and which corrupted block is reported.
func TestReadVerifiesLarge(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	content := make([]byte, 5<<20+1000) // 81 blocks, the last partial
	for i := range content {
		content[i] = byte(i*7 + i>>13)
	}
	if int64(len(content)) < 2*asyncVerifyMin {
		t.Fatalf("content of %d bytes does not exercise the verifier (from %d)", len(content), asyncVerifyMin)
	}
	good := startFake(t, serveData(content))
	c := New(Options{})
	defer c.Close()
	ctx := context.Background()
	size := int64(len(content))
	for _, tc := range []struct{ off, n int64 }{
		{0, size}, {1000, 4 << 20}, {BlockSize, 3 << 20}, {5, size - 5}, {size - (3 << 20) - 7, 3 << 20},
	} {
		p := make([]byte, tc.n)
		n, err := c.Read(ctx, good.lis.Addr().String(), 1, 0, tc.off, p)
		if err != nil || n != len(p) || !bytes.Equal(p, content[tc.off:tc.off+tc.n]) {
			t.Fatalf("read [%d,+%d): n=%d err=%v", tc.off, tc.n, n, err)
		}
	}
	last := int(size / BlockSize)
	for _, tc := range []struct {
		corrupt []int
		off, n  int64
		want    int64
	}{
		{[]int{40}, 0, size, 40},                      // interior, verifier
		{[]int{40, 70}, 0, size, 40},                  // the first of two
		{[]int{0, 40}, 1000, 4 << 20, 0},              // leading edge block
		{[]int{30, last}, 1000, size - 1000, 30},      // verifier before the trailing edge
		{[]int{last}, 1000, size - 1000, int64(last)}, // trailing edge only
		{[]int{2, 64}, BlockSize + 1, 4 << 20, 2},     // first whole block
	} {
		bad := startFake(t, serveData(content, tc.corrupt...))
		p := make([]byte, tc.n)
		_, err := c.Read(ctx, bad.lis.Addr().String(), 9, 0, tc.off, p)
		var ce *ChecksumError
		if !errors.As(err, &ce) || ce.Block != tc.want || ce.Handle != 9 || !errors.Is(err, ErrChecksum) {
			t.Fatalf("read [%d,+%d) with blocks %v corrupted: %v, want block %d", tc.off, tc.n, tc.corrupt, err, tc.want)
		}
	}
}

func TestReadVerifies(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	good := startFake(t, serveChunk(-1))
	bad := startFake(t, serveChunk(2))
	c := New(Options{})
	defer c.Close()
	ctx := context.Background()
	for _, tc := range []struct{ off, n int64 }{
		{0, int64(len(chunk))}, {1, 10}, {BlockSize - 1, 2}, {BlockSize, BlockSize}, {100, 3 * BlockSize}, {int64(len(chunk)) - 5, 5},
	} {
		p := make([]byte, tc.n)
		n, err := c.Read(ctx, good.lis.Addr().String(), 1, 0, tc.off, p)
		if err != nil || n != len(p) || string(p) != string(chunk[tc.off:tc.off+tc.n]) {
			t.Fatalf("read [%d,+%d): n=%d err=%v", tc.off, tc.n, n, err)
		}
	}
	// Past the end: short read with io.EOF.
	p := make([]byte, 100)
	if n, err := c.Read(ctx, good.lis.Addr().String(), 1, 0, int64(len(chunk))-40, p); n != 40 || err != io.EOF {
		t.Fatalf("read across the end: %d %v", n, err)
	}
	if n, err := c.Read(ctx, good.lis.Addr().String(), 1, 0, int64(len(chunk))+1, p); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d %v", n, err)
	}
	// The connection was reused for all of them.
	if a := good.accepts.Load(); a != 1 {
		t.Fatalf("%d connections for sequential reads, want 1 pooled", a)
	}
	// A corrupted block is caught even when the caller wants only part of it.
	for _, off := range []int64{0, 2*BlockSize + 5000, 2*BlockSize + 50} {
		p := make([]byte, 100)
		_, err := c.Read(ctx, bad.lis.Addr().String(), 9, 0, off, p)
		var ce *ChecksumError
		inBlock2 := off/BlockSize == 2 || (off+100)/BlockSize == 2
		if inBlock2 {
			if !errors.As(err, &ce) || ce.Block != 2 || ce.Handle != 9 || !errors.Is(err, ErrChecksum) {
				t.Fatalf("read at %d of a corrupted block: %v", off, err)
			}
		} else if err != nil {
			t.Fatalf("read at %d of good blocks: %v", off, err)
		}
	}
}

func TestErrorsAndDeadlines(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	silent := startFake(t, func(io.Writer, wire.Header, []byte, []byte) {})
	refusing := startFake(t, func(w io.Writer, h wire.Header, _, _ []byte) {
		answer(w, h, wire.StatusStaleVersion, &wire.ErrorResponse{Replica: "10.0.0.9:7", Message: "old"}, nil)
	})
	garbage := startFake(t, func(w io.Writer, h wire.Header, _, _ []byte) { _, _ = w.Write(make([]byte, 64)) })
	c := New(Options{IOTimeout: 5 * time.Second})
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Length(ctx, silent.lis.Addr().String(), 1, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("silent server: %v", err)
	}
	chain := []string{refusing.lis.Addr().String()}
	err := c.Write(context.Background(), chain, chain[0], 1, 1, 0, []byte("x"), false)
	var re *ReplicaError
	if !errors.As(err, &re) || re.Addr != "10.0.0.9:7" || !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("refused write: %v", err)
	}
	if _, err := c.Length(context.Background(), garbage.lis.Addr().String(), 1, 0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage answer: %v", err)
	}
	if _, err := c.Length(context.Background(), "127.0.0.1:1", 1, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("nobody listening: %v", err)
	}
	if err := c.Write(context.Background(), chain, "elsewhere:1", 1, 1, 0, []byte("x"), false); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("primary outside the chain: %v", err)
	}
	if _, err := c.Append(context.Background(), chain, chain[0], 1, 1, make([]byte, MaxRecordBytes+1), false); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge record: %v", err)
	}
	c.Close()
	if _, err := c.Length(context.Background(), chain[0], 1, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// TestReadCancelled: cancelling the context while the payload streams
// ends the read with the context's error (not a replica failure).
func TestReadCancelled(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	started := make(chan struct{})
	stall := startFake(t, func(w io.Writer, h wire.Header, meta, _ []byte) {
		// Announce a full block of payload, send half, then stall.
		sums := []uint64{0}
		hd := wire.Header{Op: h.Op, Flags: wire.FlagResponse, RequestID: h.RequestID, PayloadLen: BlockSize}
		b := wire.AppendRequest(nil, &hd, nil, &wire.ReadResponse{ChunkLength: BlockSize, Sums: sums})
		_, _ = w.Write(append(b, make([]byte, BlockSize/2)...))
		close(started)
	})
	c := New(Options{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := c.Read(ctx, stall.lis.Addr().String(), 1, 0, 0, make([]byte, 100))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled read: %v", err)
	}
}
