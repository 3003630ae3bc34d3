package chunkserver

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// TestPushPipelined pushes along a chain of three and shows that the last
// chunkserver received its first packet while the client had sent only
// half of the data: the client does not send the second half before that.
func TestPushPipelined(t *testing.T) {
	noLeaks(t)
	arrived := make(chan struct{}, 1)
	last := startServer(t, func(o *Options) {
		o.testPacketHook = func(wire.PushID, int64, int64) {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
	})
	mid := startServer(t, nil)
	first := startServer(t, nil)

	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	nc, err := net.Dial("tcp", first.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	id := wire.PushID{Client: 1, Seq: 1}
	h := wire.Header{Op: wire.OpPush, RequestID: 1, PayloadLen: uint32(len(data))}
	frame := wire.AppendRequest(nil, &h, nil, &wire.PushRequest{ID: id, DataSum: xxhash.Sum64(data), Downstream: []string{mid.Addr(), last.Addr()}})
	if _, err := nc.Write(append(frame, data[:len(data)/2]...)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the chain's last chunkserver got nothing while the client held back half the data: store-and-forward, not pipelined")
	}
	if _, err := nc.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	var hb [wire.HeaderSize]byte
	if _, err := io.ReadFull(nc, hb[:]); err != nil {
		t.Fatal(err)
	}
	rh, err := wire.DecodeHeader(hb[:])
	if err != nil || rh.Status != wire.StatusOK {
		t.Fatalf("push answer %+v, %v", rh, err)
	}
	for _, s := range []*Server{first, mid, last} {
		b := s.pushes.take(id)
		if b == nil || xxhash.Sum64(b.B) != xxhash.Sum64(data) {
			t.Fatalf("%s does not hold the pushed data", s.Addr())
		}
		s.pushes.release(b)
	}
}

// TestPushBufferBounded: pushes beyond the buffer cap wait and are then
// refused with ErrBusy, a push larger than the cap is refused at once,
// and unclaimed pushes are evicted after PushTimeout, freeing room.
func TestPushBufferBounded(t *testing.T) {
	noLeaks(t)
	s := startServer(t, func(o *Options) {
		o.PushBufferBytes = 1 << 20
		o.PushWait = 50 * time.Millisecond
		o.PushTimeout = 300 * time.Millisecond
	})
	dc := newClient(t)
	ctx := context.Background()
	chain := []string{s.Addr()}
	if _, err := dc.Push(ctx, chain, make([]byte, 2<<20)); !errors.Is(err, dataclient.ErrTooLarge) {
		t.Fatalf("push over the whole cap: %v", err)
	}
	id, err := dc.Push(ctx, chain, make([]byte, 768<<10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Push(ctx, chain, make([]byte, 768<<10)); !errors.Is(err, dataclient.ErrBusy) {
		t.Fatalf("push over the cap: %v, want ErrBusy", err)
	}
	// The first push is evicted unclaimed; then its room is free again.
	deadline := time.Now().Add(20 * time.Second)
	for s.pushes.len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("unclaimed push never evicted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs := newChunk(t, chain, 0x50, 0)
	if _, err := dc.Push(ctx, chain, make([]byte, 768<<10)); err != nil {
		t.Fatalf("push after eviction: %v", err)
	}
	// A mutation naming the evicted push is refused and changes nothing.
	err = writePushed(ctx, dc, s.Addr(), rs.handle, id, 768<<10)
	if !errors.Is(err, dataclient.ErrNoPushData) {
		t.Fatalf("write of evicted push: %v", err)
	}
	if n, _ := dc.Length(ctx, s.Addr(), rs.handle, 0); n != 0 {
		t.Fatalf("chunk grew to %d after a refused write", n)
	}
}

// TestPushWaitsForRoom: a push over the cap waits (PushWait) and gets in
// as soon as a write consumes buffered data.
func TestPushWaitsForRoom(t *testing.T) {
	noLeaks(t)
	s := startServer(t, func(o *Options) {
		o.PushBufferBytes = 1 << 20
		o.PushWait = 20 * time.Second
	})
	dc := newClient(t)
	ctx := context.Background()
	chain := []string{s.Addr()}
	rs := newChunk(t, chain, 0x51, 0)
	id, err := dc.Push(ctx, chain, make([]byte, 768<<10))
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := dc.Push(ctx, chain, make([]byte, 768<<10))
		waited <- err
	}()
	waitFor(t, "the second push to wait for room", func() bool { return s.pushes.waiting.Load() == 1 })
	if err := writePushed(ctx, dc, s.Addr(), rs.handle, id, 768<<10); err != nil {
		t.Fatalf("write of the buffered push: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("waiting push: %v", err)
	}
}

// writePushed sends a raw write request naming push id.
func writePushed(ctx context.Context, dc *dataclient.Client, addr string, h uint64, id wire.PushID, n int64) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	hd := wire.Header{Op: wire.OpWrite, RequestID: 5}
	frame := wire.AppendRequest(nil, &hd, nil, &wire.MutationRequest{Handle: h, Version: 1, Length: n, ID: id})
	if _, err := nc.Write(frame); err != nil {
		return err
	}
	var hb [wire.HeaderSize]byte
	if _, err := io.ReadFull(nc, hb[:]); err != nil {
		return err
	}
	rh, err := wire.DecodeHeader(hb[:])
	if err != nil {
		return err
	}
	if rh.Status == wire.StatusNoPushData {
		return dataclient.ErrNoPushData
	}
	if rh.Status != wire.StatusOK {
		return errors.New(rh.Status.String())
	}
	return nil
}
