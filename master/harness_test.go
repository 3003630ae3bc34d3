package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock shared by the master and fake chunkservers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a master under test with fake chunkservers, all on 127.0.0.1.
type env struct {
	t      testing.TB
	dir    string
	clock  *fakeClock
	opts   Options
	m      *Master
	addr   string
	cc     *grpc.ClientConn
	mc     controlpb.MasterClient
	serveD chan error
	css    map[string]*fakeCS
	grants *grantLog
}

func newEnv(t testing.TB, tweak func(*Options)) *env {
	e := &env{t: t, dir: t.TempDir(), clock: newFakeClock(), css: map[string]*fakeCS{}, grants: &grantLog{}}
	e.opts = Options{
		Dir:               e.dir,
		LeaseTTL:          60 * time.Second,
		HeartbeatInterval: time.Hour, // tests drive maintain() themselves
		DeadAfter:         10 * time.Second,
		GCGrace:           time.Minute,
		RPCTimeout:        2 * time.Second,
		Clock:             e.clock,
	}
	if tweak != nil {
		tweak(&e.opts)
	}
	e.start()
	t.Cleanup(e.close)
	return e
}

func (e *env) start() {
	m, err := New(e.opts)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.m, e.addr = m, lis.Addr().String()
	e.serveD = make(chan error, 1)
	go func() { e.serveD <- m.Serve(lis) }()
	e.cc, err = control.Dial(e.addr, control.DialOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.mc = controlpb.NewMasterClient(e.cc)
	for _, cs := range e.css {
		cs.mc = e.mc
	}
}

// stopMaster closes the master (a clean stop; crash tests use a process).
func (e *env) stopMaster() {
	if e.m == nil {
		return
	}
	e.cc.Close()
	if err := e.m.Close(); err != nil {
		e.t.Errorf("master Close: %v", err)
	}
	if err := <-e.serveD; err != nil {
		e.t.Errorf("Serve: %v", err)
	}
	e.m = nil
}

func (e *env) restartMaster() {
	e.stopMaster()
	e.start()
}

func (e *env) close() {
	for _, cs := range e.css {
		cs.close()
	}
	e.stopMaster()
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	e.t.Cleanup(cancel)
	return ctx
}

// grantLog records every lease a fake chunkserver accepted, in fake time.
type grantLog struct {
	mu     sync.Mutex
	grants []grantRec
}

type grantRec struct {
	handle   uint64
	server   string
	version  uint64
	from, to time.Time
}

func (g *grantLog) add(r grantRec) {
	g.mu.Lock()
	g.grants = append(g.grants, r)
	g.mu.Unlock()
}

// extend lengthens server's lease on h (an extension it received).
func (g *grantLog) extend(h uint64, server string, to time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.grants) - 1; i >= 0; i-- {
		if r := &g.grants[i]; r.handle == h && r.server == server {
			if to.After(r.to) {
				r.to = to
			}
			return
		}
	}
}

// checkOnePrimary fails if two different servers held leases on one chunk
// at overlapping times.
func (g *grantLog) checkOnePrimary(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	by := map[uint64][]grantRec{}
	for _, r := range g.grants {
		by[r.handle] = append(by[r.handle], r)
	}
	for h, rs := range by {
		sort.Slice(rs, func(i, j int) bool { return rs[i].from.Before(rs[j].from) })
		for i := range rs {
			for j := i + 1; j < len(rs); j++ {
				if rs[i].server != rs[j].server && rs[j].from.Before(rs[i].to) {
					t.Fatalf("chunk %x: two primaries: %s until %v and %s from %v", h, rs[i].server, rs[i].to, rs[j].server, rs[j].from)
				}
			}
		}
	}
}

func (g *grantLog) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.grants)
}

// fakeCS is an in-test chunkserver: a real gRPC Chunkserver service on
// 127.0.0.1:0 with chunks in memory, and Register/Heartbeat driven by the
// test (hb) so every step is deterministic.
type fakeCS struct {
	controlpb.UnimplementedChunkserverServer
	e     *env
	addr  string
	rack  string
	lis   net.Listener
	srv   *grpc.Server
	done  chan error
	mc    controlpb.MasterClient
	clock *fakeClock

	mu          sync.Mutex
	chunks      map[uint64]*fakeChunk
	changed     map[uint64]bool
	removed     map[uint64]bool
	extend      map[uint64]bool // handles to ask extensions for
	capacity    int64
	free        int64
	failVersion bool // SetVersion answers with a transport-like error (outcome unknown)
	// refuseVersion: SetVersion answers STALE_VERSION without taking it.
	refuseVersion bool
	// leaseSecondaries: the secondaries of the last lease granted here.
	leaseSecondaries map[uint64][]string
	applyCaps        map[uint64][]byte // the apply capability of the last lease granted here
	failCopy         bool              // CopyChunk fails
	copiedSync       []uint64          // chunks copied by CopyChunk
	// loseGrantAnswer: accept GrantLease, then answer with an error (the
	// answer was lost).
	loseGrantAnswer bool
	// refuseGrant: answer GrantLease with STALE_VERSION without taking it.
	refuseGrant bool
	// copyAnyVersion: copy whatever version the source has (misbehaving).
	copyAnyVersion bool
	// holdSetVersion, when set, makes SetVersion wait until it is closed.
	holdSetVersion chan struct{}
	deleted        []uint64
	revoked        []uint64
	closed         bool
	lastExtended   map[uint64]int64
}

type fakeChunk struct {
	version uint64
	length  int64
	corrupt bool
}

func (e *env) addCS(rack string) *fakeCS {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	cs := &fakeCS{
		e: e, addr: lis.Addr().String(), rack: rack, lis: lis, mc: e.mc, clock: e.clock,
		chunks: map[uint64]*fakeChunk{}, changed: map[uint64]bool{}, removed: map[uint64]bool{},
		extend: map[uint64]bool{}, capacity: 1 << 40, free: 1 << 40, done: make(chan error, 1),
		lastExtended: map[uint64]int64{}, leaseSecondaries: map[uint64][]string{}, applyCaps: map[uint64][]byte{},
	}
	cs.srv = grpc.NewServer(control.NewServerOptions(control.ServerOptions{})...)
	controlpb.RegisterChunkserverServer(cs.srv, cs)
	go func() { cs.done <- cs.srv.Serve(lis) }()
	e.css[cs.addr] = cs
	cs.register()
	return cs
}

func (cs *fakeCS) close() {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return
	}
	cs.closed = true
	cs.mu.Unlock()
	cs.srv.Stop()
	<-cs.done
}

func (cs *fakeCS) CreateChunk(ctx context.Context, req *controlpb.CreateChunkRequest) (*controlpb.CreateChunkResponse, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.chunks[req.Handle] != nil {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_EXISTS, "chunk %x exists", req.Handle)
	}
	cs.chunks[req.Handle] = &fakeChunk{version: req.Version}
	return &controlpb.CreateChunkResponse{}, nil
}

func (cs *fakeCS) SetVersion(ctx context.Context, req *controlpb.SetVersionRequest) (*controlpb.SetVersionResponse, error) {
	cs.mu.Lock()
	hold := cs.holdSetVersion
	cs.mu.Unlock()
	if hold != nil {
		<-hold
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.chunks[req.Handle]
	if c == nil {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK, "no chunk %x", req.Handle)
	}
	if cs.failVersion {
		return nil, errors.New("injected SetVersion failure")
	}
	if cs.refuseVersion {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION, "injected: chunk %x refuses version %d", req.Handle, req.Version)
	}
	if c.version != req.ExpectedVersion && c.version != req.Version {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION, "chunk %x at %d", req.Handle, c.version)
	}
	c.version = req.Version
	return &controlpb.SetVersionResponse{Length: c.length}, nil
}

func (cs *fakeCS) GrantLease(ctx context.Context, req *controlpb.GrantLeaseRequest) (*controlpb.GrantLeaseResponse, error) {
	cs.mu.Lock()
	c := cs.chunks[req.Handle]
	lose := cs.loseGrantAnswer
	refuse := cs.refuseGrant
	cs.mu.Unlock()
	if c == nil || c.version != req.Version || refuse {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION, "chunk %x not at version %d", req.Handle, req.Version)
	}
	cs.mu.Lock()
	cs.leaseSecondaries[req.Handle] = slices.Sorted(slices.Values(req.Secondaries))
	cs.applyCaps[req.Handle] = req.ApplyCapability
	cs.mu.Unlock()
	now := cs.clock.Now()
	cs.e.grants.add(grantRec{handle: req.Handle, server: cs.addr, version: req.Version, from: now, to: now.Add(time.Duration(req.LeaseMs) * time.Millisecond)})
	if lose {
		return nil, errors.New("injected: grant answer lost")
	}
	return &controlpb.GrantLeaseResponse{}, nil
}

// CopyChunk copies from another fake chunkserver at the command's version.
func (cs *fakeCS) CopyChunk(ctx context.Context, req *controlpb.CopyCommand) (*controlpb.CopyChunkResponse, error) {
	cs.mu.Lock()
	failCopy := cs.failCopy
	cs.mu.Unlock()
	if failCopy {
		return nil, errors.New("injected: copy failed")
	}
	src := cs.e.css[req.Source]
	if src == nil {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT, "no source %s", req.Source)
	}
	src.mu.Lock()
	sc := src.chunks[req.Handle]
	var c fakeChunk
	if sc != nil {
		c = *sc
	}
	src.mu.Unlock()
	if sc == nil || c.version != req.Version {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION, "source has no chunk %x at version %d", req.Handle, req.Version)
	}
	cs.mu.Lock()
	cs.chunks[req.Handle] = &c
	cs.changed[req.Handle] = true
	cs.copiedSync = append(cs.copiedSync, req.Handle)
	cs.mu.Unlock()
	return &controlpb.CopyChunkResponse{Version: c.version, Length: c.length}, nil
}

func (cs *fakeCS) RevokeLease(ctx context.Context, req *controlpb.RevokeLeaseRequest) (*controlpb.RevokeLeaseResponse, error) {
	return &controlpb.RevokeLeaseResponse{}, nil
}

func (cs *fakeCS) report() []*controlpb.ChunkReport {
	var out []*controlpb.ChunkReport
	for h, c := range cs.chunks {
		out = append(out, &controlpb.ChunkReport{Handle: h, Version: c.version, Length: c.length, Corrupt: c.corrupt})
	}
	return out
}

func (cs *fakeCS) register() {
	cs.mu.Lock()
	req := &controlpb.RegisterRequest{Addr: cs.addr, Rack: cs.rack, CapacityBytes: cs.capacity, FreeBytes: cs.free, Chunks: cs.report()}
	clear(cs.changed)
	clear(cs.removed)
	cs.mu.Unlock()
	if _, err := cs.mc.Register(context.Background(), req); err != nil {
		cs.e.t.Fatalf("register %s: %v", cs.addr, err)
	}
}

// hb sends one heartbeat and applies the reply (deletes, copies from other
// fake chunkservers, extensions).
func (cs *fakeCS) hb() *controlpb.HeartbeatResponse {
	cs.mu.Lock()
	req := &controlpb.HeartbeatRequest{Addr: cs.addr, FreeBytes: cs.free, CapacityBytes: cs.capacity}
	for h := range cs.changed {
		if c := cs.chunks[h]; c != nil {
			req.Changed = append(req.Changed, &controlpb.ChunkReport{Handle: h, Version: c.version, Length: c.length, Corrupt: c.corrupt})
		}
	}
	for h := range cs.removed {
		req.Removed = append(req.Removed, h)
	}
	for h := range cs.extend {
		req.LeaseExtensions = append(req.LeaseExtensions, h)
	}
	clear(cs.changed)
	clear(cs.removed)
	cs.mu.Unlock()
	sent := cs.clock.Now()
	resp, err := cs.mc.Heartbeat(context.Background(), req)
	if err != nil {
		cs.e.t.Fatalf("heartbeat %s: %v", cs.addr, err)
	}
	if resp.Reregister {
		cs.register()
		return resp
	}
	for _, x := range resp.Extensions {
		cs.e.grants.extend(x.Handle, cs.addr, sent.Add(time.Duration(x.LeaseMs)*time.Millisecond))
	}
	for _, cp := range resp.Copy {
		src := cs.e.css[cp.Source]
		src.mu.Lock()
		sc := src.chunks[cp.Handle]
		cs.mu.Lock()
		anyVersion := cs.copyAnyVersion
		cs.mu.Unlock()
		ok := sc != nil && (sc.version == cp.Version || anyVersion)
		var c fakeChunk
		if ok {
			c = *sc
		}
		src.mu.Unlock()
		cs.mu.Lock()
		if ok {
			cs.chunks[cp.Handle] = &c
			cs.changed[cp.Handle] = true
		}
		cs.mu.Unlock()
	}
	cs.mu.Lock()
	for _, h := range resp.Delete {
		delete(cs.chunks, h)
		cs.deleted = append(cs.deleted, h)
	}
	cs.revoked = append(cs.revoked, resp.Revoked...)
	cs.mu.Unlock()
	return resp
}

func (cs *fakeCS) has(h uint64) (fakeChunk, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.chunks[h]
	if c == nil {
		return fakeChunk{}, false
	}
	return *c, true
}

// hbAll heartbeats every fake chunkserver that is not closed.
func (e *env) hbAll() {
	for _, cs := range e.css {
		cs.mu.Lock()
		closed := cs.closed
		cs.mu.Unlock()
		if !closed {
			cs.hb()
		}
	}
}

func (e *env) create(path string, repl uint32) {
	e.t.Helper()
	if _, err := e.mc.Create(e.ctx(), &controlpb.CreateRequest{Path: path, Replication: repl, Parents: true}); err != nil {
		e.t.Fatalf("create %s: %v", path, err)
	}
}

func (e *env) lookup(path string, idx int64, write, alloc bool) (*controlpb.ChunkLocation, error) {
	resp, err := e.mc.Lookup(e.ctx(), &controlpb.LookupRequest{Path: path, FirstIndex: idx, Count: 1, ForWrite: write, Allocate: alloc})
	if err != nil {
		return nil, err
	}
	if len(resp.Chunks) != 1 {
		return nil, fmt.Errorf("lookup %s[%d]: %d chunks", path, idx, len(resp.Chunks))
	}
	return resp.Chunks[0], nil
}

func (e *env) mustLookup(path string, idx int64, write, alloc bool) *controlpb.ChunkLocation {
	e.t.Helper()
	loc, err := e.lookup(path, idx, write, alloc)
	if err != nil {
		e.t.Fatal(err)
	}
	return loc
}

// pastGrace moves the fake clock past the master's post-start lease grace.
func (e *env) pastGrace() { e.clock.Advance(e.opts.LeaseTTL + time.Second) }
