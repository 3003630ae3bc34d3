package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// TestAppendStream: concurrent pipelined streams of record appends; every
// record is acknowledged once, at its own offset, and found there on every
// replica, which stay byte-identical.
func TestAppendStream(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x70, 0)
	dc := newClient(t)
	ctx := context.Background()
	const streams, perStream = 4, 150
	type rec struct {
		off  int64
		data []byte
	}
	recs := make([][]rec, streams)
	var wg sync.WaitGroup
	errc := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			st, err := dc.NewAppendStream(ctx, addrs, rs.primaryAddr(), rs.handle, 1, false, 8)
			if err != nil {
				errc <- err
				return
			}
			var calls []*dataclient.AppendCall
			var datas [][]byte
			for j := range perStream {
				d := []byte(fmt.Sprintf("stream %d record %d ", i, j))
				d = append(d, randBytes(r, r.IntN(5000))...)
				calls = append(calls, st.Append(d))
				datas = append(datas, d)
			}
			for j, c := range calls {
				off, err := c.Wait()
				if err != nil {
					errc <- fmt.Errorf("stream %d record %d: %w", i, j, err)
					return
				}
				recs[i] = append(recs[i], rec{off, datas[j]})
			}
			if err := st.Close(); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	var all []rec
	for _, r := range recs {
		all = append(all, r...)
	}
	slices.SortFunc(all, func(a, b rec) int { return int(a.off - b.off) })
	end := int64(0)
	for _, r := range all {
		if r.off < end {
			t.Fatalf("record at %d overlaps the one ending at %d", r.off, end)
		}
		end = r.off + int64(len(r.data))
	}
	want := readAll(t, dc, addrs[0], rs.handle)
	if int64(len(want)) != end {
		t.Fatalf("chunk length %d, records end at %d", len(want), end)
	}
	for _, r := range all {
		if !bytes.Equal(want[r.off:r.off+int64(len(r.data))], r.data) {
			t.Fatalf("record at %d differs from what was appended", r.off)
		}
	}
	for _, a := range addrs[1:] {
		if got := readAll(t, dc, a, rs.handle); !bytes.Equal(got, want) {
			t.Fatalf("replica %s differs from the primary", a)
		}
	}
}

// TestPipelinedMutationsReadAhead: requests sent back to back on one
// connection are read while the first waits for its round (so they join
// the next round), and answered in request order, a refused one (bad
// checksum) and a non-mutation request included.
func TestPipelinedMutationsReadAhead(t *testing.T) {
	noLeaks(t)
	rb := newRoundBlocker()
	servers := []*Server{startServer(t, rb.hook), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x71, 0)
	recs := [][]byte{[]byte("first"), []byte("second"), []byte("third"), []byte("refused"), []byte("fifth")}
	var frames []byte
	for i, d := range recs {
		sum := xxhash.Sum64(d)
		if i == 3 {
			sum++ // does not match: refused with a checksum error
		}
		frames = appendFrame(frames, rs, uint64(i+1), d, sum)
	}
	lh := wire.Header{Op: wire.OpLength, RequestID: 6}
	frames = wire.AppendRequest(frames, &lh, nil, &wire.LengthRequest{Handle: rs.handle, Version: 1})
	nc := sendRaw(t, rs.primaryAddr(), frames)
	// The first three are in the blocked first round or queued for the
	// next: none waits for the round before being read.
	q := servers[0].seqs.get(store.Handle(rs.handle))
	waitFor(t, "the first three appends read", func() bool {
		inRound := 0
		if rounds := rb.sizes(); len(rounds) > 0 {
			inRound = rounds[0]
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		return inRound+len(q.pending) == 3
	})
	close(rb.release)

	type answer struct {
		h    wire.Header
		meta []byte
	}
	var answers []answer
	for range 6 {
		var hb [wire.HeaderSize]byte
		if _, err := io.ReadFull(nc, hb[:]); err != nil {
			t.Fatal(err)
		}
		h, err := wire.DecodeHeader(hb[:])
		if err != nil {
			t.Fatal(err)
		}
		meta := make([]byte, h.MetaLen)
		if _, err := io.ReadFull(nc, meta); err != nil {
			t.Fatal(err)
		}
		answers = append(answers, answer{h, meta})
	}
	var offs []int64
	for i, a := range answers {
		if a.h.RequestID != uint64(i+1) {
			t.Fatalf("answer %d is for request %d: out of order", i+1, a.h.RequestID)
		}
		want := wire.StatusOK
		if i == 3 {
			want = wire.StatusChecksum
		}
		if a.h.Status != want {
			t.Fatalf("request %d: status %v, want %v", i+1, a.h.Status, want)
		}
		if a.h.Op == wire.OpAppend && a.h.Status == wire.StatusOK {
			var r wire.MutationResponse
			if err := r.Decode(a.meta); err != nil {
				t.Fatal(err)
			}
			offs = append(offs, r.Offset)
		}
	}
	var lr wire.LengthResponse
	if err := lr.Decode(answers[5].meta); err != nil {
		t.Fatal(err)
	}
	good := slices.Concat(recs[0], recs[1], recs[2], recs[4])
	if lr.Length != int64(len(good)) {
		t.Fatalf("length answered after the appends: %d, want %d", lr.Length, len(good))
	}
	dc := newClient(t)
	for _, a := range addrs {
		got := readAll(t, dc, a, rs.handle)
		for j, i := range []int{0, 1, 2, 4} {
			if !bytes.Equal(got[offs[j]:offs[j]+int64(len(recs[i]))], recs[i]) {
				t.Fatalf("replica %s: record %q not at %d", a, recs[i], offs[j])
			}
		}
		if !bytes.Contains(got, recs[4]) || bytes.Contains(got, recs[3]) || len(got) != len(good) {
			t.Fatalf("replica %s holds %q", a, got)
		}
	}
}

// TestAppendStreamChunkFull: records that do not fit get ErrChunkFull (the
// chunk padded on every replica), the ones before them succeed.
func TestAppendStreamChunkFull(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x72, 0)
	dc := newClient(t)
	st, err := dc.NewAppendStream(context.Background(), addrs, rs.primaryAddr(), rs.handle, 1, false, 16)
	if err != nil {
		t.Fatal(err)
	}
	rec := bytes.Repeat([]byte("r"), 60000)
	n := testChunkSize/len(rec) + 10
	var calls []*dataclient.AppendCall
	for range n {
		calls = append(calls, st.Append(rec))
	}
	fits := testChunkSize / len(rec)
	for i, c := range calls {
		off, err := c.Wait()
		switch {
		case i < fits && (err != nil || off != int64(i*len(rec))):
			t.Fatalf("record %d: offset %d, %v", i, off, err)
		case i >= fits && !errors.Is(err, dataclient.ErrChunkFull):
			t.Fatalf("record %d past the chunk's room: %d, %v", i, off, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if c := st.Append(rec); !errors.Is(errOf(c), dataclient.ErrClosed) {
		t.Fatalf("append after close: %v", errOf(c))
	}
	for _, a := range addrs {
		if n, err := dc.Length(context.Background(), a, rs.handle, 1); err != nil || n != testChunkSize {
			t.Fatalf("replica %s: length %d, %v (want padded to %d)", a, n, err, testChunkSize)
		}
	}
	// Too large for a stream: refused without touching the connection.
	if c := newStream(t, dc, rs).Append(make([]byte, 65<<10)); !errors.Is(errOf(c), dataclient.ErrTooLarge) {
		t.Fatalf("oversized record: %v", errOf(c))
	}
}

// TestAppendStreamPrimaryLost: when the primary goes away, the appends in
// flight and every later one fail naming it, and Close reports it.
func TestAppendStreamPrimaryLost(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x73, 0)
	dc := newClient(t)
	st := newStream(t, dc, rs)
	if _, err := st.Append([]byte("before")).Wait(); err != nil {
		t.Fatal(err)
	}
	servers[0].Close()
	var err error
	for deadline := time.Now().Add(20 * time.Second); err == nil && time.Now().Before(deadline); {
		_, err = st.Append([]byte("after")).Wait()
	}
	var re *dataclient.ReplicaError
	if !errors.As(err, &re) || re.Addr != rs.primaryAddr() || !errors.Is(err, dataclient.ErrUnavailable) {
		t.Fatalf("append after the primary closed: %v", err)
	}
	if _, err := st.Append([]byte("later")).Wait(); !errors.Is(err, dataclient.ErrUnavailable) {
		t.Fatalf("append on a failed stream: %v", err)
	}
	if err := st.Close(); !errors.Is(err, dataclient.ErrUnavailable) {
		t.Fatalf("close of a failed stream: %v", err)
	}
}

func newStream(t *testing.T, dc *dataclient.Client, rs *replicaSet) *dataclient.AppendStream {
	t.Helper()
	st, err := dc.NewAppendStream(context.Background(), rs.addrs, rs.primaryAddr(), rs.handle, 1, false, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func errOf(c *dataclient.AppendCall) error {
	_, err := c.Wait()
	return err
}

// TestPipelinedThenGarbage: a malformed frame behind queued appends closes
// the connection only after the queued appends were answered; the server
// goes on serving others and the appends are on every replica.
func TestPipelinedThenGarbage(t *testing.T) {
	noLeaks(t)
	servers := []*Server{startServer(t, nil), startServer(t, nil)}
	addrs := addrsOf(servers)
	rs := newChunk(t, addrs, 0x74, 0)
	var frames []byte
	const n = 8
	for i := range n {
		d := []byte(fmt.Sprintf("record %d", i))
		frames = appendFrame(frames, rs, uint64(i+1), d, xxhash.Sum64(d))
	}
	frames = append(frames, bytes.Repeat([]byte{0xee}, wire.HeaderSize)...) // bad magic
	nc := sendRaw(t, rs.primaryAddr(), frames)
	for i := range n {
		var hb [wire.HeaderSize]byte
		if _, err := io.ReadFull(nc, hb[:]); err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		h, err := wire.DecodeHeader(hb[:])
		if err != nil || h.RequestID != uint64(i+1) || h.Status != wire.StatusOK {
			t.Fatalf("answer %d: %+v, %v", i+1, h, err)
		}
		if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the bad frame: %v, want the connection closed", err)
	}
	dc := newClient(t)
	want := readAll(t, dc, addrs[0], rs.handle)
	if got := readAll(t, dc, addrs[1], rs.handle); !bytes.Equal(got, want) || len(want) != n*len("record 0") {
		t.Fatalf("replicas hold %q and %q", want, got)
	}
}

// appendFrame appends an inline APPEND of d to rs's chunk, with request id
// id and data checksum sum, to frames.
func appendFrame(frames []byte, rs *replicaSet, id uint64, d []byte, sum uint64) []byte {
	req := wire.MutationRequest{Handle: rs.handle, Version: 1, Length: int64(len(d)), DataSum: sum, Secondaries: rs.secondaries()}
	h := wire.Header{Op: wire.OpAppend, Flags: wire.FlagInline, RequestID: id, PayloadLen: uint32(len(d))}
	return append(wire.AppendRequest(frames, &h, nil, &req), d...)
}

// sendRaw dials addr, writes frames in one write and returns the
// connection (closed at cleanup), with a 20 s deadline.
func sendRaw(t *testing.T, addr string, frames []byte) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write(frames); err != nil {
		t.Fatal(err)
	}
	return nc
}

// roundBlocker is a round hook that records each round's size and holds
// the first round until release is closed.
type roundBlocker struct {
	release chan struct{}
	mu      sync.Mutex
	rounds  []int // guarded by mu
}

func newRoundBlocker() *roundBlocker { return &roundBlocker{release: make(chan struct{})} }

func (rb *roundBlocker) hook(o *Options) {
	o.testRoundHook = func(_ store.Handle, n int) {
		rb.mu.Lock()
		rb.rounds = append(rb.rounds, n)
		first := len(rb.rounds) == 1
		rb.mu.Unlock()
		if first {
			<-rb.release
		}
	}
}

// sizes returns the sizes of the rounds so far.
func (rb *roundBlocker) sizes() []int {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return slices.Clone(rb.rounds)
}
