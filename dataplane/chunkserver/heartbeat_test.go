package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/store"
)

// fakeMaster accepts Register and Heartbeat and answers heartbeats with
// whatever reply returns.
type fakeMaster struct {
	controlpb.UnimplementedMasterServer
	mu         sync.Mutex
	registers  map[string]int                                                 // registrations per server
	heartbeats map[string][]*controlpb.HeartbeatRequest                       // guarded by mu
	reply      func(*controlpb.HeartbeatRequest) *controlpb.HeartbeatResponse // called under mu
	// locate answers LocateChunk (called under mu; nil: UNKNOWN_CHUNK);
	// located counts the calls per handle, bad collects ReportBadReplica.
	locate  func(h uint64) *controlpb.ChunkLocation
	located map[uint64]int
	bad     []*controlpb.ReportBadReplicaRequest
}

func (m *fakeMaster) Register(ctx context.Context, req *controlpb.RegisterRequest) (*controlpb.RegisterResponse, error) {
	m.mu.Lock()
	m.registers[req.GetAddr()]++
	m.mu.Unlock()
	return &controlpb.RegisterResponse{HeartbeatIntervalMs: 10, ChunkSize: testChunkSize}, nil
}

func (m *fakeMaster) Heartbeat(ctx context.Context, req *controlpb.HeartbeatRequest) (*controlpb.HeartbeatResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.heartbeats[req.GetAddr()] = append(m.heartbeats[req.GetAddr()], req)
	if m.reply != nil {
		return m.reply(req), nil
	}
	return &controlpb.HeartbeatResponse{}, nil
}

func (m *fakeMaster) seen(f func() bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f()
}

func startFakeMaster(t *testing.T) (*fakeMaster, string) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{registers: map[string]int{}, heartbeats: map[string][]*controlpb.HeartbeatRequest{}, located: map[uint64]int{}}
	gs := grpc.NewServer()
	controlpb.RegisterMasterServer(gs, m)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return m, lis.Addr().String()
}

// waitFor polls cond until it holds or 20 s passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHeartbeats: chunkservers register, report deltas, ask for lease
// extensions of mutated chunks and execute the master's commands: delete,
// copy from another replica (verified reads), re-register.
func TestHeartbeats(t *testing.T) {
	noLeaks(t)
	m, maddr := startFakeMaster(t)
	withMaster := func(o *Options) { o.MasterAddr = maddr }
	a := startServer(t, withMaster)
	b := startServer(t, withMaster)
	waitFor(t, "registrations", func() bool {
		return m.seen(func() bool { return m.registers[a.Addr()] == 1 && m.registers[b.Addr()] == 1 })
	})

	ctx := context.Background()
	const h, gone = 0x80, 0x81
	rs := newChunk(t, []string{a.Addr()}, h, 0)
	if _, err := rs.ctls[0].GrantLease(ctx, grantLease(h, 1, 1000)); err != nil {
		t.Fatal(err)
	}
	leaseEnd := time.Now().Add(time.Second)
	newChunk(t, []string{b.Addr()}, gone, 0)
	dc := newClient(t)
	data := randBytes(rand.New(rand.NewPCG(5, 6)), 3<<20+777)
	if err := dc.Write(ctx, []string{a.Addr()}, a.Addr(), h, 1, 0, data, false); err != nil {
		t.Fatal(err)
	}

	// Master: extend a's lease when asked; send b a delete and a copy once.
	var once, reregOnce sync.Once
	var rereg bool // guarded by m.mu
	m.mu.Lock()
	m.reply = func(req *controlpb.HeartbeatRequest) *controlpb.HeartbeatResponse {
		resp := &controlpb.HeartbeatResponse{}
		for _, e := range req.GetLeaseExtensions() {
			resp.Extensions = append(resp.Extensions, &controlpb.LeaseExtension{Handle: e, Version: 1, LeaseMs: 60000})
		}
		if req.GetAddr() == b.Addr() {
			once.Do(func() {
				resp.Delete = []uint64{gone}
				resp.Copy = []*controlpb.CopyCommand{{Handle: h, Version: 1, Source: a.Addr()}}
			})
			if rereg {
				reregOnce.Do(func() { resp.Reregister = true })
			}
		}
		return resp
	}
	m.mu.Unlock()

	waitFor(t, "lease extension", func() bool { return a.leases.valid(h, 1, time.Now().Add(10*time.Second)) })
	waitFor(t, "copy", func() bool {
		ci, err := b.store.Info(h)
		return err == nil && ci.Version == 1 && ci.Length == int64(len(data))
	})
	if !bytes.Equal(readAll(t, dc, b.Addr(), h), data) {
		t.Fatal("copied chunk differs from its source")
	}
	if _, err := b.store.Info(gone); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted chunk still there: %v", err)
	}
	// b's deltas reported the deletion; a's the mutated chunk.
	waitFor(t, "deltas", func() bool {
		return m.seen(func() bool {
			removed, changed := false, false
			for _, hb := range m.heartbeats[b.Addr()] {
				for _, r := range hb.GetRemoved() {
					removed = removed || r == gone
				}
			}
			for _, hb := range m.heartbeats[a.Addr()] {
				for _, c := range hb.GetChanged() {
					changed = changed || (c.GetHandle() == h && c.GetLength() == int64(len(data)))
				}
			}
			return removed && changed
		})
	})
	m.mu.Lock()
	rereg = true
	m.mu.Unlock()
	waitFor(t, "re-registration", func() bool { return m.seen(func() bool { return m.registers[b.Addr()] == 2 }) })
	// The extended lease outlives the granted one.
	time.Sleep(time.Until(leaseEnd) + 50*time.Millisecond)
	if err := dc.Write(ctx, []string{a.Addr()}, a.Addr(), h, 1, 0, []byte("still primary"), false); err != nil {
		t.Fatalf("write after the original lease ended: %v", err)
	}
}

// unknownServerMaster answers the first heartbeat with UNKNOWN_SERVER (a
// restarted master that lost track of the chunkserver).
type unknownServerMaster struct {
	*fakeMaster
	once sync.Once
}

func (m *unknownServerMaster) Heartbeat(ctx context.Context, req *controlpb.HeartbeatRequest) (*controlpb.HeartbeatResponse, error) {
	var err error
	m.once.Do(func() { err = control.Errorf(controlpb.ErrorCode_ERROR_CODE_UNKNOWN_SERVER, "who are you") })
	if err != nil {
		return nil, err
	}
	return m.fakeMaster.Heartbeat(ctx, req)
}

// TestReregisterOnUnknownServer: a heartbeat refused with UNKNOWN_SERVER
// makes the chunkserver register again with a full report.
func TestReregisterOnUnknownServer(t *testing.T) {
	noLeaks(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &unknownServerMaster{fakeMaster: &fakeMaster{registers: map[string]int{}, heartbeats: map[string][]*controlpb.HeartbeatRequest{}}}
	gs := grpc.NewServer()
	controlpb.RegisterMasterServer(gs, m)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	s := startServer(t, func(o *Options) { o.MasterAddr = lis.Addr().String() })
	waitFor(t, "re-registration", func() bool { return m.seen(func() bool { return m.registers[s.Addr()] == 2 }) })
	waitFor(t, "heartbeats after it", func() bool { return m.seen(func() bool { return len(m.heartbeats[s.Addr()]) > 0 }) })
}

// TestFailedRoundStopsLeaseExtension: after a round fails on a secondary
// the primary stops asking for extensions, so the lease lapses and the
// master's next grant bumps the version past the replica that missed data.
func TestFailedRoundStopsLeaseExtension(t *testing.T) {
	noLeaks(t)
	m, maddr := startFakeMaster(t)
	a := startServer(t, func(o *Options) { o.MasterAddr = maddr })
	const h = 0x90
	rs := newChunk(t, []string{a.Addr()}, h, 0)
	dc := newClient(t)
	ctx := context.Background()
	asked := func(from int) bool {
		return m.seen(func() bool {
			for _, hb := range m.heartbeats[a.Addr()][from:] {
				for _, e := range hb.GetLeaseExtensions() {
					if e == h {
						return true
					}
				}
			}
			return false
		})
	}
	count := func() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.heartbeats[a.Addr()]) }
	if err := dc.Write(ctx, []string{a.Addr()}, a.Addr(), h, rs.version, 0, []byte("ok"), false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an extension request", func() bool { return asked(0) })

	dead := "127.0.0.1:1" // nothing listens there
	if _, err := rs.ctls[0].GrantLease(ctx, grantLease(h, rs.version, 60000, dead)); err != nil {
		t.Fatal(err)
	}
	if err := dc.Write(ctx, []string{a.Addr(), dead}, a.Addr(), h, rs.version, 0, []byte("no"), false); err == nil {
		t.Fatal("write with a dead secondary succeeded")
	}
	from := count()
	waitFor(t, "three more heartbeats", func() bool { return count() >= from+3 })
	if asked(from) {
		t.Fatal("primary still asks to extend a lease under which a replica failed")
	}
	// A new grant clears it.
	if _, err := rs.ctls[0].GrantLease(ctx, grantLease(h, rs.version, 60000)); err != nil {
		t.Fatal(err)
	}
	if err := dc.Write(ctx, []string{a.Addr()}, a.Addr(), h, rs.version, 0, []byte("ok"), false); err != nil {
		t.Fatal(err)
	}
	from = count()
	waitFor(t, "an extension request under the new lease", func() bool { return asked(from) })
}

// TestCopyOverOldCopyReportsNoRemoval: a copy command for a chunk the
// server holds a copy of the master does not count (divergent, stale)
// replaces that copy without reporting it removed while the copy runs:
// the master would take the removal for the copy failing and refuse the
// completed copy. A copy that does fail is reported removed.
func TestCopyOverOldCopyReportsNoRemoval(t *testing.T) {
	noLeaks(t)
	m, maddr := startFakeMaster(t)
	b := startServer(t, func(o *Options) { o.MasterAddr = maddr; o.IOTimeout = 10 * time.Second })
	const h = 0xa0
	newChunk(t, []string{b.Addr()}, h, 0)
	if err := b.Store().WriteAt(h, []byte("an old copy"), 0); err != nil {
		t.Fatal(err)
	}
	// A source that accepts and never answers: the copy hangs in its
	// first request until the source goes away.
	src, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var connsMu sync.Mutex
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := src.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
	}()
	stopSource := func() {
		src.Close()
		<-acceptDone
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
	}
	defer stopSource()
	var once sync.Once
	m.mu.Lock()
	m.reply = func(req *controlpb.HeartbeatRequest) *controlpb.HeartbeatResponse {
		resp := &controlpb.HeartbeatResponse{}
		once.Do(func() { resp.Copy = []*controlpb.CopyCommand{{Handle: h, Version: 1, Source: src.Addr().String()}} })
		return resp
	}
	m.mu.Unlock()
	removedAfter := func(from int) bool {
		return m.seen(func() bool {
			for _, hb := range m.heartbeats[b.Addr()][from:] {
				if slices.Contains(hb.GetRemoved(), h) {
					return true
				}
			}
			return false
		})
	}
	count := func() int { m.mu.Lock(); defer m.mu.Unlock(); return len(m.heartbeats[b.Addr()]) }
	waitFor(t, "the old copy dropped by the copy in progress", func() bool {
		_, err := b.Store().Info(h)
		return errors.Is(err, store.ErrNotFound)
	})
	from := count()
	waitFor(t, "ten heartbeats during the copy", func() bool { return count() >= from+10 })
	if removedAfter(0) {
		t.Fatal("the copy's replacing the old copy was reported as a removal")
	}
	stopSource() // the copy fails: that is reported
	waitFor(t, "the failed copy reported removed", func() bool { return removedAfter(from) })
	if _, err := b.Store().Info(h); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed copy left behind: %v", err)
	}
}
