package master

import (
	"slices"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
)

func isCode(err error, c controlpb.ErrorCode) bool { return control.Code(err) == c }

// TestAllocateAndLease: allocation creates the chunk (version 1) on distinct
// servers; a write lookup bumps the version on every replica, then grants one
// lease; it is reused while valid; after expiry the next lease bumps again.
func TestAllocateAndLease(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	if len(loc.Replicas) != 3 || loc.Primary == "" || loc.Version != 2 || loc.Handle == 0 {
		t.Fatalf("first write lookup: %+v", loc)
	}
	for _, cs := range e.css {
		if c, ok := cs.has(loc.Handle); !ok || c.version != 2 {
			t.Fatalf("%s: chunk %x missing or wrong version (%+v)", cs.addr, loc.Handle, c)
		}
	}
	if n := e.grants.count(); n != 1 {
		t.Fatalf("%d grants after first lookup", n)
	}
	again := e.mustLookup("/f", 0, true, false)
	if again.Primary != loc.Primary || e.grants.count() != 1 {
		t.Fatalf("valid lease not reused: %+v, grants %d", again, e.grants.count())
	}
	// Read lookups show the primary too.
	if r := e.mustLookup("/f", 0, false, false); r.Primary != loc.Primary || r.LeaseExpiryUnixMs == 0 {
		t.Fatalf("read lookup: %+v", r)
	}
	e.clock.Advance(61 * time.Second)
	e.hbAll()
	loc2 := e.mustLookup("/f", 0, true, false)
	if loc2.Version != 3 || loc2.Primary == "" {
		t.Fatalf("after expiry: %+v", loc2)
	}
	for _, cs := range e.css {
		if c, _ := cs.has(loc.Handle); c.version != 3 {
			t.Fatalf("%s: version %d after bump", cs.addr, c.version)
		}
	}
	e.grants.checkOnePrimary(t)
	// Lookups past the end without allocate return nothing.
	resp, err := e.mc.Lookup(e.ctx(), &controlpb.LookupRequest{Path: "/f", FirstIndex: 5, Count: 2})
	if err != nil || len(resp.Chunks) != 0 || resp.FileChunks != 1 {
		t.Fatalf("lookup past end: %v %v", resp, err)
	}
	// The version bump is durable.
	e.restartMaster()
	e.pastGrace()
	e.hbAll() // re-register (the new master does not know the servers)
	e.hbAll()
	if l := e.mustLookup("/f", 0, false, false); l.Version != 3 || len(l.Replicas) != 3 {
		t.Fatalf("after restart: %+v", l)
	}
}

// TestNoSecondPrimary: when the primary disappears, no other server gets a
// lease before the old lease expired by the master's clock; across a master
// restart no lease is granted for a lease period. Extensions through
// heartbeats move the expiry and are honoured the same way.
func TestNoSecondPrimary(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	prim := e.css[loc.Primary]

	// The primary extends its lease twice, 40 s apart.
	prim.mu.Lock()
	prim.extend[loc.Handle] = true
	prim.mu.Unlock()
	for i := 0; i < 2; i++ {
		e.clock.Advance(40 * time.Second)
		resp := prim.hb()
		if len(resp.Extensions) != 1 || resp.Extensions[0].Handle != loc.Handle {
			t.Fatalf("extension %d refused: %+v", i, resp)
		}
		// A fresh apply capability comes with every extension (they
		// expire like any capability).
		if c, err := capability.Decode(resp.Extensions[0].ApplyCapability); err != nil || c.Handle != loc.Handle || c.Ops != capability.OpApply {
			t.Fatalf("extension %d: apply capability %v, %v", i, c, err)
		}
		e.hbAll()
	}
	// 80 s after the grant the (extended) lease is still the same primary.
	if l := e.mustLookup("/f", 0, true, false); l.Primary != loc.Primary {
		t.Fatalf("primary changed while lease extended: %s -> %s", loc.Primary, l.Primary)
	}
	// The primary vanishes. Others keep heartbeating; it is declared dead.
	prim.close()
	e.clock.Advance(11 * time.Second)
	for _, cs := range e.css {
		if cs != prim {
			cs.hb()
		}
	}
	e.m.maintain()
	_, err := e.lookup("/f", 0, true, false)
	if !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("lookup while the dead primary's lease may be valid = %v, want TRY_AGAIN", err)
	}
	// Past the old lease: a new primary on another server, newer version.
	e.clock.Advance(50 * time.Second)
	for _, cs := range e.css {
		if cs != prim {
			cs.hb()
		}
	}
	l, err := e.lookup("/f", 0, true, false)
	if err != nil || l.Primary == loc.Primary || l.Primary == "" || l.Version <= loc.Version {
		t.Fatalf("new lease: %+v %v", l, err)
	}
	e.grants.checkOnePrimary(t)

	// Master restart: leases it granted before are unknown now, so none is
	// granted for a lease period, and extension requests are refused.
	e.restartMaster()
	for _, cs := range e.css {
		if cs != prim {
			cs.hb() // re-register
		}
	}
	if _, err := e.lookup("/f", 0, true, false); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("write lookup right after restart = %v, want TRY_AGAIN", err)
	}
	// A chunk allocated after the restart cannot have an old lease.
	e.create("/new", 2)
	if nl, err := e.lookup("/new", 0, true, true); err != nil || nl.Primary == "" {
		t.Fatalf("write lookup of a new chunk right after restart: %+v %v", nl, err)
	}
	cur := e.css[l.Primary]
	cur.mu.Lock()
	cur.extend[l.Handle] = true
	cur.mu.Unlock()
	if resp := cur.hb(); len(resp.Extensions) != 0 || len(resp.Revoked) != 1 {
		t.Fatalf("extension during restart grace: %+v", resp)
	}
	e.clock.Advance(30 * time.Second)
	e.hbAll()
	if _, err := e.lookup("/f", 0, true, false); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("write lookup 30 s after restart = %v, want TRY_AGAIN", err)
	}
	e.clock.Advance(31 * time.Second)
	e.hbAll()
	if _, err := e.lookup("/f", 0, true, false); err != nil {
		t.Fatalf("write lookup after the grace: %v", err)
	}
	e.grants.checkOnePrimary(t)
}

// TestFailedSetVersionDropsReplica: a replica that cannot take the version
// bump is stale and leaves the chunk's members. One that refused leaves
// with the first bump; one whose answer was lost (it may have taken it) is
// left behind by a second bump before the lease is granted.
func TestFailedSetVersionDropsReplica(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refuse  bool
		skipped uint64
	}{
		{"refused", true, 1},
		{"ambiguous", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.pastGrace()
			var bad *fakeCS
			for i := 0; i < 3; i++ {
				bad = e.addCS("")
			}
			e.create("/f", 3)
			loc := e.mustLookup("/f", 0, true, true)
			bad.mu.Lock()
			bad.failVersion, bad.refuseVersion = !tc.refuse, tc.refuse
			bad.mu.Unlock()
			e.clock.Advance(61 * time.Second)
			e.hbAll()
			l := e.mustLookup("/f", 0, true, false)
			if l.Version != loc.Version+tc.skipped || len(l.Replicas) != 2 || l.Primary == bad.addr || slices.Contains(l.Replicas, bad.addr) {
				t.Fatalf("after failed bump: %+v, want v%d without %s", l, loc.Version+tc.skipped, bad.addr)
			}
			e.checkLease(l)
			e.grants.checkOnePrimary(t)
		})
	}
}

// TestLeaseNotGrantedOnUnknownOutcome: the primary takes the lease but its
// answer is lost. The master must assume the lease is held and grant nobody
// else until it would have expired, even when that server then vanishes.
func TestLeaseNotGrantedOnUnknownOutcome(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	for _, cs := range []*fakeCS{a, b} {
		cs.mu.Lock()
		cs.loseGrantAnswer = true
		cs.mu.Unlock()
	}
	e.create("/f", 2)
	if _, err := e.lookup("/f", 0, true, true); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("lookup with lost grant answer = %v, want TRY_AGAIN", err)
	}
	if e.grants.count() != 1 {
		t.Fatalf("%d grants", e.grants.count())
	}
	holder := e.css[e.grants.grants[0].server]
	other := a
	if holder == a {
		other = b
	}
	other.mu.Lock()
	other.loseGrantAnswer = false
	other.mu.Unlock()
	holder.close()
	e.clock.Advance(30 * time.Second)
	other.hb()
	e.m.maintain() // holder declared dead
	if _, err := e.lookup("/f", 0, true, false); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("lookup while the lost grant may be valid = %v, want TRY_AGAIN", err)
	}
	e.clock.Advance(31 * time.Second)
	other.hb()
	l, err := e.lookup("/f", 0, true, false)
	if err != nil || l.Primary != other.addr {
		t.Fatalf("after expiry: %+v %v", l, err)
	}
	e.grants.checkOnePrimary(t)
}

// TestRefusedGrantDropsReplica: a server that answers GrantLease with an
// error code holds no lease, so another primary may be chosen at once; a
// stale-version refusal drops that replica.
func TestRefusedGrantDropsReplica(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	for _, cs := range []*fakeCS{a, b} {
		cs.mu.Lock()
		cs.refuseGrant = true
		cs.mu.Unlock()
	}
	e.create("/f", 2)
	if _, err := e.lookup("/f", 0, true, true); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("refused grant = %v, want TRY_AGAIN", err)
	}
	l := e.mustLookup("/f", 0, false, false)
	if len(l.Replicas) != 1 {
		t.Fatalf("refusing replica still listed: %v", l.Replicas)
	}
	good := e.css[l.Replicas[0]]
	good.mu.Lock()
	good.refuseGrant = false
	good.mu.Unlock()
	l, err := e.lookup("/f", 0, true, false)
	if err != nil || l.Primary != good.addr {
		t.Fatalf("retry: %+v %v", l, err)
	}
	e.grants.checkOnePrimary(t)
}

// TestAllSetVersionFailKeepsReplicas: when no replica takes the version bump
// (a transient failure), none is dropped or deleted; a retry succeeds.
func TestAllSetVersionFailKeepsReplicas(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	for _, cs := range []*fakeCS{a, b} {
		cs.mu.Lock()
		cs.failVersion = true
		cs.mu.Unlock()
	}
	if _, err := e.lookup("/f", 0, true, false); !isCode(err, controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA) {
		t.Fatalf("lookup with every SetVersion failing = %v", err)
	}
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 2 || l.Version != loc.Version {
		t.Fatalf("replicas lost after a failed bump: %+v", l)
	}
	for _, cs := range []*fakeCS{a, b} {
		cs.hb()
		if cs.wasDeleted(loc.Handle) {
			t.Fatalf("%s told to delete after a failed bump", cs.addr)
		}
		cs.mu.Lock()
		cs.failVersion = false
		cs.mu.Unlock()
	}
	// The retry skips the number the failed bump sent (a replica may hold
	// it unconfirmed).
	if l, err := e.lookup("/f", 0, true, false); err != nil || l.Version != loc.Version+2 || len(l.Replicas) != 2 {
		t.Fatalf("retry: %+v %v", l, err)
	}
}
