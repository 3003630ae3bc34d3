package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

func setVersion(h, from, to uint64) *controlpb.SetVersionRequest {
	return &controlpb.SetVersionRequest{Handle: h, ExpectedVersion: from, Version: to}
}

// grantLease is the master's GrantLease, naming the lease's secondaries.
func grantLease(h, v uint64, ms int64, secondaries ...string) *controlpb.GrantLeaseRequest {
	return &controlpb.GrantLeaseRequest{Handle: h, Version: v, LeaseMs: ms, Secondaries: secondaries}
}

func TestControlService(t *testing.T) {
	noLeaks(t)
	s := startServer(t, nil)
	c := dialCtl(t, s.Addr())
	ctx := context.Background()
	code := func(err error) controlpb.ErrorCode { return control.Code(err) }

	if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: 7, Version: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: 7, Version: 3}); code(err) != controlpb.ErrorCode_ERROR_CODE_EXISTS {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := c.SetVersion(ctx, setVersion(7, 2, 4)); code(err) != controlpb.ErrorCode_ERROR_CODE_STALE_VERSION {
		t.Fatalf("set version from a wrong expected version: %v", err)
	}
	if _, err := c.SetVersion(ctx, setVersion(8, 2, 4)); code(err) != controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK {
		t.Fatalf("set version of an unknown chunk: %v", err)
	}
	for i := 0; i < 2; i++ { // the second is an idempotent retry
		if _, err := c.SetVersion(ctx, setVersion(7, 3, 4)); err != nil {
			t.Fatalf("set version (try %d): %v", i, err)
		}
	}
	if _, err := c.GrantLease(ctx, grantLease(7, 3, 1000)); code(err) != controlpb.ErrorCode_ERROR_CODE_STALE_VERSION {
		t.Fatalf("lease at an old version: %v", err)
	}
	if _, err := c.GrantLease(ctx, grantLease(7, 4, 0)); code(err) != controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT {
		t.Fatalf("zero lease: %v", err)
	}
	if _, err := c.GrantLease(ctx, grantLease(7, 4, 60000)); err != nil {
		t.Fatal(err)
	}
	dc := newClient(t)
	if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), 7, 4, 0, []byte("abc"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RevokeLease(ctx, &controlpb.RevokeLeaseRequest{Handle: 7}); err != nil {
		t.Fatal(err)
	}
	if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), 7, 4, 0, []byte("abc"), false); !errors.Is(err, dataclient.ErrNotPrimary) {
		t.Fatalf("write after revoke: %v", err)
	}
}

// TestLeaseExpires: the primary stops accepting mutations once its lease
// ran out by its own clock (the margin is capped to a tenth of the lease).
func TestLeaseExpires(t *testing.T) {
	noLeaks(t)
	s := startServer(t, nil)
	rs := newChunk(t, []string{s.Addr()}, 9, 0)
	ctx := context.Background()
	if _, err := rs.ctls[0].GrantLease(ctx, grantLease(9, 1, 200)); err != nil {
		t.Fatal(err)
	}
	if !s.leases.valid(9, 1, time.Now()) {
		t.Fatal("fresh 200 ms lease not valid")
	}
	if s.leases.valid(9, 1, time.Now().Add(181*time.Millisecond)) {
		t.Fatal("lease still valid past its duration minus the margin")
	}
	time.Sleep(250 * time.Millisecond)
	dc := newClient(t)
	if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), 9, 1, 0, []byte("late"), false); !errors.Is(err, dataclient.ErrNotPrimary) {
		t.Fatalf("write after the lease expired: %v", err)
	}
}

// TestCopyChunkRPC: CopyChunk copies a chunk from a replica at the given
// version and answers with the copy's version and length once it is
// complete; bad arguments and a source without that version change nothing
// here.
func TestCopyChunkRPC(t *testing.T) {
	noLeaks(t)
	src, dst := startServer(t, nil), startServer(t, nil)
	rs := newChunk(t, []string{src.Addr()}, 0x50, 0)
	dc := newClient(t)
	ctx := context.Background()
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 300_001)
	if err := dc.Write(ctx, []string{src.Addr()}, src.Addr(), rs.handle, 1, 0, data, false); err != nil {
		t.Fatal(err)
	}
	c := dialCtl(t, dst.Addr())
	for _, bad := range []*controlpb.CopyCommand{
		{Handle: 0, Version: 1, Source: src.Addr()},
		{Handle: rs.handle, Version: 1, Source: ""},
		{Handle: rs.handle, Version: 2, Source: src.Addr()}, // the source is at 1
	} {
		if _, err := c.CopyChunk(ctx, bad); err == nil {
			t.Fatalf("CopyChunk(%v) succeeded", bad)
		}
		if _, err := dst.store.Info(store.Handle(rs.handle)); err == nil {
			t.Fatalf("CopyChunk(%v) left a chunk behind", bad)
		}
	}
	resp, err := c.CopyChunk(ctx, &controlpb.CopyCommand{Handle: rs.handle, Version: 1, Source: src.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != 1 || resp.GetLength() != int64(len(data)) {
		t.Fatalf("copy answered %+v", resp)
	}
	if got := readAll(t, dc, dst.Addr(), rs.handle); !bytes.Equal(got, data) {
		t.Fatal("copy differs from the source")
	}
	// One copy of a chunk at a time.
	if !dst.copying.begin(rs.handle) {
		t.Fatal("copy guard still held")
	}
	_, err = c.CopyChunk(ctx, &controlpb.CopyCommand{Handle: rs.handle, Version: 1, Source: src.Addr()})
	dst.copying.end(rs.handle)
	if control.Code(err) != controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN {
		t.Fatalf("copy while another runs: %v", err)
	}
}
