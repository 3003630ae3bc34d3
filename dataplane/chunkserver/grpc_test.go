package chunkserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
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
