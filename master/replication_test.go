package master

import (
	"slices"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
)

func (cs *fakeCS) wasDeleted(h uint64) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Contains(cs.deleted, h)
}

// TestStaleReplica: a chunkserver down during a version bump comes back with
// the old version: excluded from lookups and leases, and told to delete it.
func TestStaleReplica(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	var css []*fakeCS
	for i := 0; i < 3; i++ {
		css = append(css, e.addCS(""))
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	// One secondary goes silent and is declared dead.
	var down *fakeCS
	for _, cs := range css {
		if cs.addr != loc.Primary {
			down = cs
			break
		}
	}
	e.clock.Advance(61 * time.Second)
	for _, cs := range css {
		if cs != down {
			cs.hb()
		}
	}
	e.m.maintain()
	l := e.mustLookup("/f", 0, true, false) // new lease: version 3 on the two live ones
	if l.Version != loc.Version+1 || len(l.Replicas) != 2 || slices.Contains(l.Replicas, down.addr) {
		t.Fatalf("after bump without %s: %+v", down.addr, l)
	}
	// It comes back at the old version (re-registers with a full report).
	if resp := down.hb(); !resp.Reregister {
		t.Fatalf("dead server not asked to re-register: %+v", resp)
	}
	l = e.mustLookup("/f", 0, false, false)
	if slices.Contains(l.Replicas, down.addr) {
		t.Fatalf("stale replica listed: %+v", l)
	}
	down.hb()
	if !down.wasDeleted(loc.Handle) {
		t.Fatalf("stale replica on %s not told to delete", down.addr)
	}
	if _, ok := down.has(loc.Handle); ok {
		t.Fatal("stale chunk still on the server")
	}
}

// TestReReplication: a dead replica's chunks are copied to another server,
// fewest replicas first, bounded per server; the new copy counts once it is
// reported.
func TestReReplication(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxCopiesPerServer = 1 })
	e.pastGrace()
	var css []*fakeCS
	for i := 0; i < 3; i++ {
		css = append(css, e.addCS(""))
	}
	e.create("/a", 3)
	e.create("/b", 2)
	la := e.mustLookup("/a", 0, false, true)
	lb := e.mustLookup("/b", 0, false, true)
	spare := e.addCS("")
	// Kill a server holding both chunks.
	var victim *fakeCS
	for _, cs := range css {
		if slices.Contains(la.Replicas, cs.addr) && slices.Contains(lb.Replicas, cs.addr) {
			victim = cs
			break
		}
	}
	victim.close()
	// Make the spare the only possible target (the other survivors are
	// full), so both chunks compete for it.
	for _, cs := range css {
		if cs != victim {
			cs.mu.Lock()
			cs.free = 0
			cs.mu.Unlock()
		}
	}
	e.clock.Advance(11 * time.Second)
	e.hbAll()
	e.m.maintain()
	// /b now has 1 of 2 replicas, /a 2 of 3: /b is more urgent. With one
	// copy per server in flight, only one copy can go to the spare now.
	resp := spare.hb()
	if len(resp.Copy) != 1 || resp.Copy[0].Handle != lb.Handle {
		t.Fatalf("first copy command: %+v (want chunk %x first)", resp.Copy, lb.Handle)
	}
	spare.hb() // reports the copy
	e.m.maintain()
	spare.hb() // receives the second copy command
	spare.hb() // reports it
	for _, h := range []uint64{la.Handle, lb.Handle} {
		if _, ok := spare.has(h); !ok {
			t.Fatalf("spare lacks chunk %x", h)
		}
	}
	a := e.mustLookup("/a", 0, false, false)
	b := e.mustLookup("/b", 0, false, false)
	if len(a.Replicas) != 3 || len(b.Replicas) != 2 || !slices.Contains(a.Replicas, spare.addr) {
		t.Fatalf("after re-replication: a=%v b=%v", a.Replicas, b.Replicas)
	}
}

// TestGarbageCollection: deleted files' chunks are deleted after the grace
// period; chunks no file knows (orphans) are deleted when reported.
func TestGarbageCollection(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	cs := e.addCS("")
	e.create("/keep", 1)
	e.create("/gone", 1)
	keep := e.mustLookup("/keep", 0, false, true)
	gone := e.mustLookup("/gone", 0, false, true)
	if _, err := e.mc.Delete(e.ctx(), &controlpb.DeleteRequest{Path: "/gone"}); err != nil {
		t.Fatal(err)
	}
	e.m.maintain()
	cs.hb()
	if cs.wasDeleted(gone.Handle) {
		t.Fatal("chunk deleted before the grace period")
	}
	e.clock.Advance(61 * time.Second)
	cs.hb()
	e.m.maintain()
	cs.hb()
	if !cs.wasDeleted(gone.Handle) || cs.wasDeleted(keep.Handle) {
		t.Fatalf("after grace: deleted %v", cs.deleted)
	}
	// Orphan: a chunk the master never recorded.
	cs.mu.Lock()
	cs.chunks[999999] = &fakeChunk{version: 3}
	cs.changed[999999] = true
	cs.mu.Unlock()
	cs.hb()
	cs.hb()
	if !cs.wasDeleted(999999) {
		t.Fatal("orphan chunk not deleted")
	}
	// The reclaim survives a restart: the handle stays unknown.
	e.restartMaster()
	e.m.mu.RLock()
	_, known := e.m.st.chunks[gone.Handle]
	e.m.mu.RUnlock()
	if known {
		t.Fatal("reclaimed chunk known again after restart")
	}
}

// TestReportBadReplica drops the replica, deletes it and re-replicates.
func TestReportBadReplica(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	bad := e.css[loc.Replicas[0]]
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: bad.addr, Reason: "checksum"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: 12345678, Replica: bad.addr}); !isCode(err, controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK) {
		t.Fatalf("unknown chunk report = %v", err)
	}
	if l := e.mustLookup("/f", 0, false, false); slices.Contains(l.Replicas, bad.addr) {
		t.Fatalf("bad replica still listed: %v", l.Replicas)
	}
	bad.hb()
	if !bad.wasDeleted(loc.Handle) {
		t.Fatal("bad replica not deleted")
	}
	e.m.maintain()
	e.hbAll()
	e.hbAll()
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 2 {
		t.Fatalf("not re-replicated: %v", l.Replicas)
	}
}

// TestBadReplicaReportAtOtherVersionIgnored: a divergence found at a
// version the chunk has since left says nothing about the replica now;
// the same report at the current version drops it.
func TestBadReplicaReportAtOtherVersionIgnored(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true) // a lease: the version moved past the creation's
	bad := loc.Replicas[1]
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: bad, Version: loc.Version - 1}); err != nil {
		t.Fatal(err)
	}
	if l := e.mustLookup("/f", 0, false, false); !slices.Contains(l.Replicas, bad) {
		t.Fatalf("a report about version %d dropped the replica at version %d: %v", loc.Version-1, loc.Version, l.Replicas)
	}
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: bad, Version: loc.Version}); err != nil {
		t.Fatal(err)
	}
	if l := e.mustLookup("/f", 0, false, false); slices.Contains(l.Replicas, bad) {
		t.Fatalf("a report at the current version kept the replica: %v", l.Replicas)
	}
}

// TestLocateChunkByHandle: a chunkserver's replica check finds a chunk's
// version, live replicas and primary by handle, as a lookup lists them;
// unknown and deleted chunks are refused.
func TestLocateChunkByHandle(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	want := e.mustLookup("/f", 0, true, true)
	got, err := e.mc.LocateChunk(e.ctx(), &controlpb.LocateChunkRequest{Handle: want.Handle})
	if err != nil {
		t.Fatal(err)
	}
	l := got.GetLocation()
	if l.GetHandle() != want.Handle || l.GetVersion() != want.Version || !slices.Equal(l.GetReplicas(), want.Replicas) ||
		l.GetPrimary() != want.Primary || want.Primary == "" || len(l.GetCapability()) != 0 {
		t.Fatalf("LocateChunk = %v, want the lookup's %v without capability", l, want)
	}
	if _, err := e.mc.LocateChunk(e.ctx(), &controlpb.LocateChunkRequest{Handle: 987654}); !isCode(err, controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK) {
		t.Fatalf("unknown chunk: %v", err)
	}
	if _, err := e.mc.Delete(e.ctx(), &controlpb.DeleteRequest{Path: "/f"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mc.LocateChunk(e.ctx(), &controlpb.LocateChunkRequest{Handle: want.Handle}); !isCode(err, controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK) {
		t.Fatalf("chunk of a deleted file: %v", err)
	}
}

// TestAdoptHigherVersion: a replica reporting a newer version than the
// master knows (master died mid-grant, or a SetVersion nobody confirmed)
// makes the master adopt and persist it. The reporter, the only copy at
// the adopted version, is never deleted; the old-version copy is kept
// (never listed) until the adopted version is back at its target, then
// replaced by a copy from the reporter (issue 15, defect 1).
func TestAdoptHigherVersion(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	a.mu.Lock()
	a.chunks[loc.Handle].version = 5
	a.changed[loc.Handle] = true
	a.mu.Unlock()
	a.hb()
	l := e.mustLookup("/f", 0, false, false)
	if l.Version != 5 || !slices.Equal(l.Replicas, []string{a.addr}) {
		t.Fatalf("after adoption: %+v", l)
	}
	a.hb()
	b.hb()
	if a.wasDeleted(loc.Handle) {
		t.Fatal("the only replica at the adopted version was deleted")
	}
	if b.wasDeleted(loc.Handle) {
		t.Fatal("old-version replica deleted before the adopted version had another copy")
	}
	for range 3 {
		e.m.maintain()
		e.hbAll()
	}
	l = e.mustLookup("/f", 0, false, false)
	slices.Sort(l.Replicas)
	want := []string{a.addr, b.addr}
	slices.Sort(want)
	if l.Version != 5 || !slices.Equal(l.Replicas, want) {
		t.Fatalf("not back at 2 replicas of version 5: %+v", l)
	}
	if c, ok := b.has(loc.Handle); !ok || c.version != 5 {
		t.Fatalf("b holds %+v, %v; want the copy at version 5", c, ok)
	}
	if a.wasDeleted(loc.Handle) {
		t.Fatal("adopted replica deleted")
	}
	e.restartMaster()
	e.hbAll()
	if l := e.mustLookup("/f", 0, false, false); l.Version != 5 {
		t.Fatalf("adopted version not durable: %+v", l)
	}
}

// TestAdoptHigherVersionNeverDeletesLastCopy: one SetVersion sent to one of
// three replicas (as an attacker on a plaintext cluster can) made the
// master delete all three copies; now the adopted one stays, the stale
// ones stay until the adopted version has its three copies again, and the
// chunk ends at three replicas of the adopted version.
func TestAdoptHigherVersionNeverDeletesLastCopy(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true)
	e.hbAll()
	reporter := css[1]
	reporter.mu.Lock()
	reporter.chunks[loc.Handle].version = loc.Version + 7
	reporter.changed[loc.Handle] = true
	reporter.mu.Unlock()
	reporter.hb()
	e.hbAll()
	e.hbAll()
	for _, cs := range css {
		if cs.wasDeleted(loc.Handle) {
			t.Fatalf("%s's copy deleted right after the adoption", cs.addr)
		}
	}
	for range 6 {
		e.m.maintain()
		e.hbAll()
	}
	l := e.mustLookup("/f", 0, false, false)
	if l.Version != loc.Version+7 || len(l.Replicas) != 3 {
		t.Fatalf("after adoption and re-replication: %+v", l)
	}
	if reporter.wasDeleted(loc.Handle) {
		t.Fatal("the adopted replica was deleted")
	}
	for _, cs := range css {
		if c, ok := cs.has(loc.Handle); !ok || c.version != loc.Version+7 {
			t.Fatalf("%s holds %+v, %v; want version %d", cs.addr, c, ok, loc.Version+7)
		}
	}
}

// TestHandlesNeverReused: handles keep growing across restarts.
func TestHandlesNeverReused(t *testing.T) {
	e := newEnv(t, nil)
	e.addCS("")
	seen := map[uint64]bool{}
	var last uint64
	for round := 0; round < 3; round++ {
		name := "/f" + string(rune('a'+round))
		e.create(name, 1)
		for i := int64(0); i < 3; i++ {
			l := e.mustLookup(name, i, false, true)
			if seen[l.Handle] || l.Handle <= last {
				t.Fatalf("handle %x reused or not increasing (last %x)", l.Handle, last)
			}
			seen[l.Handle], last = true, l.Handle
		}
		e.restartMaster()
		e.hbAll()
	}
}

// TestPlacementAcrossRacks: replicas of a chunk go to distinct racks when
// possible.
func TestPlacementAcrossRacks(t *testing.T) {
	e := newEnv(t, nil)
	for _, r := range []string{"r1", "r1", "r1", "r2", "r2", "r3"} {
		e.addCS(r)
	}
	e.create("/f", 3)
	for i := int64(0); i < 10; i++ {
		l := e.mustLookup("/f", i, false, true)
		racks := map[string]bool{}
		for _, a := range l.Replicas {
			racks[e.css[a].rack] = true
		}
		if len(l.Replicas) != 3 || len(racks) != 3 {
			t.Fatalf("chunk %d on %v: racks %v", i, l.Replicas, racks)
		}
	}
}

// TestRebalance: a full chunkserver gets a chunk moved off it.
func TestRebalance(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	c := e.addCS("")
	a.mu.Lock()
	a.free = a.capacity / 20 // 95% full
	a.mu.Unlock()
	e.clock.Advance(61 * time.Second)
	e.hbAll()
	e.m.maintain()
	c.hb() // copy command
	c.hb() // report
	e.m.maintain()
	a.hb()
	if !a.wasDeleted(loc.Handle) {
		t.Fatalf("chunk not moved off the full server (deleted: %v)", a.deleted)
	}
	l := e.mustLookup("/f", 0, false, false)
	if len(l.Replicas) != 2 || !slices.Contains(l.Replicas, c.addr) || !slices.Contains(l.Replicas, b.addr) {
		t.Fatalf("after rebalance: %v", l.Replicas)
	}
}

// TestRejoinDuringLease: a chunkserver that restarts while a lease is
// active stays a member (the primary cannot mutate without it, so it
// missed nothing acknowledged) and the lease stays as it is. A member
// declared dead makes the next write lookup bump the version among the
// others, with the same primary; coming back it is stale and deleted.
func TestRejoinDuringLease(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	e.checkLease(loc)
	var secs []*fakeCS
	for _, a := range loc.Replicas {
		if a != loc.Primary {
			secs = append(secs, e.css[a])
		}
	}
	secs[0].register() // restarted mid-lease
	if l := e.mustLookup("/f", 0, true, false); len(l.Replicas) != 3 || l.Version != loc.Version || l.Primary != loc.Primary {
		t.Fatalf("after a member restarted mid-lease: %+v, want the lease unchanged", l)
	}
	// secs[1] goes silent and is declared dead.
	e.clock.Advance(11 * time.Second)
	for _, cs := range e.css {
		if cs != secs[1] {
			cs.hb()
		}
	}
	e.m.maintain()
	l := e.mustLookup("/f", 0, true, false)
	if l.Version != loc.Version+1 || l.Primary != loc.Primary || len(l.Replicas) != 2 || slices.Contains(l.Replicas, secs[1].addr) {
		t.Fatalf("write lookup after a member died: %+v, want v%d, same primary, without %s", l, loc.Version+1, secs[1].addr)
	}
	e.checkLease(l)
	if resp := secs[1].hb(); !resp.Reregister {
		t.Fatal("dead server not asked to re-register")
	}
	if l := e.mustLookup("/f", 0, false, false); slices.Contains(l.Replicas, secs[1].addr) {
		t.Fatalf("member that missed the bump listed again: %v", l.Replicas)
	}
	secs[1].hb()
	if !secs[1].wasDeleted(loc.Handle) {
		t.Fatal("stale copy not deleted")
	}
	// Without a lease, a restart is harmless: the copies stay listed.
	e.create("/g", 3)
	g := e.mustLookup("/g", 0, false, true)
	e.css[g.Replicas[0]].register()
	if l := e.mustLookup("/g", 0, false, false); len(l.Replicas) != 3 {
		t.Fatalf("unleased chunk lost a replica on rejoin: %v", l.Replicas)
	}
	e.grants.checkOnePrimary(t)
}

// TestCopyOvertakenByLeaseIsStale: a copy scheduled before a version bump is
// not accepted afterwards, even if the target claims the new version.
func TestCopyOvertakenByLeaseIsStale(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b, c := e.addCS(""), e.addCS(""), e.addCS("")
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true)
	spare := e.addCS("")
	spare.mu.Lock()
	spare.copyAnyVersion = true
	spare.mu.Unlock()
	c.close()
	e.clock.Advance(11 * time.Second)
	a.hb()
	b.hb()
	spare.hb()
	e.m.maintain() // c dead: copy to the spare scheduled (not sent yet)
	if l := e.mustLookup("/f", 0, true, false); l.Version != loc.Version+1 {
		t.Fatalf("lease did not bump: %+v", l)
	}
	spare.hb() // copies (now at the new version) ...
	spare.hb() // ... and reports it
	l := e.mustLookup("/f", 0, false, false)
	if slices.Contains(l.Replicas, spare.addr) {
		t.Fatalf("copy made before the bump accepted: %v", l.Replicas)
	}
	if !spare.wasDeleted(loc.Handle) {
		t.Fatal("overtaken copy not deleted")
	}
}

// TestMemberBackWithoutBumpListed (docs/faults.md B1, as it is now): a
// member declared dead while the chunk was leased comes back after the
// lease ended with nobody having asked for a new one. The version did not
// move, and no mutation was acknowledged without it (the primary needs
// every member of its lease): it is listed again, and not deleted.
func TestMemberBackWithoutBumpListed(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	var sec *fakeCS
	for _, a := range loc.Replicas {
		if a != loc.Primary {
			sec = e.css[a]
			break
		}
	}
	e.clock.Advance(11 * time.Second)
	for _, cs := range e.css {
		if cs != sec {
			cs.hb()
		}
	}
	e.m.maintain() // sec declared dead during the lease
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 2 || slices.Contains(l.Replicas, sec.addr) {
		t.Fatalf("dead member listed: %v", l.Replicas)
	}
	e.clock.Advance(60 * time.Second)
	for _, cs := range e.css {
		if cs != sec {
			cs.hb()
		}
	}
	e.m.maintain() // lease over, nobody asked for a new one
	if resp := sec.hb(); !resp.Reregister {
		t.Fatalf("dead server not asked to re-register")
	}
	l := e.mustLookup("/f", 0, false, false)
	if !slices.Contains(l.Replicas, sec.addr) || l.Version != loc.Version || len(l.Replicas) != 3 {
		t.Fatalf("member back at the current version: %+v, want it listed", l)
	}
	e.m.maintain()
	sec.hb()
	if sec.wasDeleted(loc.Handle) {
		t.Fatal("member's copy deleted")
	}
}

// TestStaleCopyNeverListedAlone: a server that missed a bump holds an old
// copy; when every member is dead it is still not listed (it lacks
// acknowledged mutations) nor deleted, and once a member is back it is
// kept until the member's copy replaces it.
func TestStaleCopyNeverListedAlone(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	e.addCS("")
	e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, true, true)
	a, b := e.css[loc.Primary], (*fakeCS)(nil)
	for _, r := range loc.Replicas {
		if r != loc.Primary {
			b = e.css[r]
		}
	}
	b.close()
	e.clock.Advance(11 * time.Second)
	a.hb()
	e.m.maintain() // b dead
	if l := e.mustLookup("/f", 0, true, false); l.Version != loc.Version+1 || !slices.Equal(l.Replicas, []string{a.addr}) {
		t.Fatalf("after b died: %+v", l)
	}
	a.close()
	e.clock.Advance(11 * time.Second)
	e.m.maintain() // a dead
	b.restart()    // back with the old version
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 0 {
		t.Fatalf("stale copy listed when alone: %v", l.Replicas)
	}
	b.hb()
	if b.wasDeleted(loc.Handle) {
		t.Fatal("stale copy deleted while no member is alive")
	}
	a.restart()
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{a.addr}) {
		t.Fatalf("member back: %v", l.Replicas)
	}
	b.hb()
	// Kept until the member has its second copy again: that copy goes to
	// b (once a's lease is surely over) and replaces the stale one.
	e.pastGrace()
	e.hbAll()
	for range 3 {
		e.m.maintain()
		e.hbAll()
	}
	l := e.mustLookup("/f", 0, false, false)
	if len(l.Replicas) != 2 || l.Version != loc.Version+1 {
		t.Fatalf("not re-replicated once a member is back: %+v", l)
	}
	if c, ok := b.has(loc.Handle); !ok || c.version != loc.Version+1 {
		t.Fatalf("stale copy not replaced: %+v, %v", c, ok)
	}
}

// TestBadReplicaNotReaddedByReport (docs/faults.md B3): a replica reported
// bad is not re-added by its own report before its deletion happened.
func TestBadReplicaNotReaddedByReport(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	e.addCS("")
	e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	bad := e.css[loc.Replicas[0]]
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: bad.addr}); err != nil {
		t.Fatal(err)
	}
	// Its report arrives before the delete command (a full re-register).
	bad.register()
	l := e.mustLookup("/f", 0, false, false)
	if len(l.Replicas) != 1 || l.Replicas[0] == bad.addr {
		t.Fatalf("bad replica re-added by its report: %v", l.Replicas)
	}
	bad.hb()
	if !bad.wasDeleted(loc.Handle) {
		t.Fatal("bad replica not told to delete after re-registering")
	}
	// The good one is reported bad too: it is the last one, so it is kept.
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: l.Replicas[0]}); err != nil {
		t.Fatal(err)
	}
	if l2 := e.mustLookup("/f", 0, false, false); !slices.Equal(l2.Replicas, l.Replicas) {
		t.Fatalf("last replica dropped: %v", l2.Replicas)
	}
}

// TestKeptBadReplicaListedCorrupt (issue 15, defect 4): a replica reported
// bad while it is the chunk's last live copy is kept, but every lookup
// marks it corrupt, so fsck does not count it a good copy and readers try
// it last; once another member is live again it is dropped for real (and
// told to delete) and the mark goes with it.
func TestKeptBadReplicaListedCorrupt(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	e.addCS("")
	e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	if len(loc.Replicas) != 2 || len(loc.Corrupt) != 0 {
		t.Fatalf("new chunk: %v", loc)
	}
	bad, other := e.css[loc.Replicas[0]], e.css[loc.Replicas[1]]
	other.close()
	e.clock.Advance(11 * time.Second)
	bad.hb()
	e.m.maintain() // other dead: bad is the last live copy
	if _, err := e.mc.ReportBadReplica(e.ctx(), &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: bad.addr, Reason: "divergent"}); err != nil {
		t.Fatal(err)
	}
	l := e.mustLookup("/f", 0, false, false)
	if !slices.Equal(l.Replicas, []string{bad.addr}) || !slices.Equal(l.Corrupt, []string{bad.addr}) {
		t.Fatalf("last replica reported bad: replicas %v corrupt %v, want it kept and marked", l.Replicas, l.Corrupt)
	}
	// A spare is no reason to copy it: the copy would pass off bad data
	// as a good copy.
	spare := e.addCS("")
	e.m.maintain()
	bad.hb()
	if resp := spare.hb(); len(resp.GetCopy()) != 0 {
		t.Fatalf("copy made from the kept bad replica: %v", resp.GetCopy())
	}
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Corrupt, []string{bad.addr}) || bad.wasDeleted(loc.Handle) {
		t.Fatalf("kept bad replica unmarked or deleted while still the last copy: %v", l)
	}
	other.restart() // a member comes back: a good copy is live again
	e.m.maintain()
	l = e.mustLookup("/f", 0, false, false)
	if !slices.Equal(l.Replicas, []string{other.addr}) || len(l.Corrupt) != 0 {
		t.Fatalf("member back: replicas %v corrupt %v, want only %s unmarked", l.Replicas, l.Corrupt, other.addr)
	}
	// Its copy goes: deleted, or replaced by a copy of the good one.
	resp := bad.hb()
	copied := slices.ContainsFunc(resp.GetCopy(), func(cp *controlpb.CopyCommand) bool {
		return cp.GetHandle() == loc.Handle && cp.GetSource() == other.addr
	})
	if !bad.wasDeleted(loc.Handle) && !copied {
		t.Fatalf("bad replica neither told to delete nor replaced once another copy was live: %v", resp)
	}
}

// TestRemovalBeforeCopyCommandKeepsCopy: a target's report that it
// removed the chunk, sent before the copy command reached it (it deleted
// an old copy of its own), says nothing about the copy: the copy still
// joins when it completes. (The replica check and fsck repair a
// divergent replica by copying onto its own server: the copy was refused
// and scheduled again, round after round, 21 times in one run of faults
// scenario 19.)
func TestRemovalBeforeCopyCommandKeepsCopy(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	if len(loc.Replicas) != 2 {
		t.Fatalf("placed on %v", loc.Replicas)
	}
	c := e.addCS("")
	b.close()
	e.clock.Advance(11 * time.Second)
	a.hb()
	c.hb()
	e.m.maintain() // b dead: a copy from a to c is scheduled
	c.mu.Lock()
	c.removed[loc.Handle] = true // an old copy of its own, deleted before
	c.mu.Unlock()
	if resp := c.hb(); len(resp.GetCopy()) != 1 || resp.GetCopy()[0].GetHandle() != loc.Handle {
		t.Fatalf("copy command not delivered: %v", resp)
	}
	c.hb() // reports the completed copy
	l := e.mustLookup("/f", 0, false, false)
	if !slices.Contains(l.Replicas, c.addr) || c.wasDeleted(loc.Handle) {
		t.Fatalf("copy refused after an earlier removal report: replicas %v, deleted %v", l.Replicas, c.wasDeleted(loc.Handle))
	}
}

// TestRestartedPrimaryNotRegranted (docs/faults.md B2): a primary that
// restarted within its lease is neither extended nor granted the lease again
// at the same version; the next lease bumps the version.
func TestRestartedPrimaryNotRegranted(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	e.addCS("")
	e.create("/f", 1)
	loc := e.mustLookup("/f", 0, true, true)
	prim := e.css[loc.Primary]
	prim.register() // restarted: the only copy, so it stays listed
	prim.mu.Lock()
	prim.extend[loc.Handle] = true
	prim.mu.Unlock()
	if resp := prim.hb(); len(resp.Extensions) != 0 {
		t.Fatalf("restarted primary's lease extended: %+v", resp)
	}
	if _, err := e.lookup("/f", 0, true, false); !isCode(err, controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN) {
		t.Fatalf("write lookup during the old lease = %v, want TRY_AGAIN", err)
	}
	e.clock.Advance(61 * time.Second)
	prim.hb()
	l := e.mustLookup("/f", 0, true, false)
	if l.Version != loc.Version+1 || l.Primary != prim.addr {
		t.Fatalf("new lease: %+v (want version %d)", l, loc.Version+1)
	}
}

// TestReportDuringLeaseChangeIsTaken (docs/faults.md B6): a copy reported
// while a lease change of its chunk is in flight is not lost: it is taken
// after the change (here: stale, since the version moved), and the chunk is
// copied again once the lease is over.
func TestReportDuringLeaseChangeIsTaken(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	a, b := e.addCS(""), e.addCS("")
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true) // on a and b only
	spare := e.addCS("")
	e.m.maintain()
	spare.hb() // gets the copy command and copies
	hold := make(chan struct{})
	for _, cs := range []*fakeCS{a, b} {
		cs.mu.Lock()
		cs.holdSetVersion = hold
		cs.mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { _, err := e.lookup("/f", 0, true, false); done <- err }()
	for {
		e.m.mu.RLock()
		busy := e.m.granting[loc.Handle] != nil
		e.m.mu.RUnlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	spare.hb() // reports the copy during the lease change
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	spare.hb()
	if !spare.wasDeleted(loc.Handle) {
		t.Fatal("copy reported during the lease change was not taken (no delete of the stale copy)")
	}
	spare.mu.Lock()
	spare.removed[loc.Handle] = true
	spare.mu.Unlock()
	e.clock.Advance(61 * time.Second)
	e.hbAll()
	e.m.maintain()
	spare.hb()
	spare.hb()
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 3 {
		t.Fatalf("chunk not re-replicated after the lease: %v", l.Replicas)
	}
}

// TestMemberBackWithoutCopyIsCopyTarget: a member that comes back without
// the chunk (disk replaced) stops being a member and can receive a copy.
func TestMemberBackWithoutCopyIsCopyTarget(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, true, true)
	var sec *fakeCS
	for _, a := range loc.Replicas {
		if a != loc.Primary {
			sec = e.css[a]
			break
		}
	}
	e.clock.Advance(11 * time.Second)
	for _, cs := range e.css {
		if cs != sec {
			cs.hb()
		}
	}
	e.m.maintain() // sec dead during the lease
	// It comes back having lost the chunk (disk replaced).
	sec.mu.Lock()
	delete(sec.chunks, loc.Handle)
	sec.mu.Unlock()
	sec.hb() // re-register without it
	e.clock.Advance(61 * time.Second)
	e.hbAll()
	e.m.maintain()
	sec.hb()
	sec.hb()
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 3 || !slices.Contains(l.Replicas, sec.addr) {
		t.Fatalf("not re-replicated to the returning server: %v", l.Replicas)
	}
}

// TestLostMemberReplacedBeforeLease: a member of a leased chunk dies; the
// next write lookup bumps the version among the others, copies the chunk to
// a spare server while no lease exists at the new version, and grants the
// lease naming the copy too: a chunk under steady writes gets back to its
// target without waiting for the lease to lapse. A failed copy still
// grants the lease, without it.
func TestLostMemberReplacedBeforeLease(t *testing.T) {
	for _, fail := range []bool{false, true} {
		e := newEnv(t, nil)
		e.pastGrace()
		for i := 0; i < 3; i++ {
			e.addCS("")
		}
		e.create("/f", 3)
		loc := e.mustLookup("/f", 0, true, true)
		spare := e.addCS("")
		spare.mu.Lock()
		spare.failCopy = fail
		spare.mu.Unlock()
		var lost *fakeCS
		for _, a := range loc.Replicas {
			if a != loc.Primary {
				lost = e.css[a]
				break
			}
		}
		lost.close()
		e.clock.Advance(11 * time.Second)
		e.hbAll()
		e.m.maintain()
		l := e.mustLookup("/f", 0, true, false)
		e.checkLease(l)
		if l.Version != loc.Version+1 || l.Primary != loc.Primary || slices.Contains(l.Replicas, lost.addr) {
			t.Fatalf("fail=%v: after a member died: %+v", fail, l)
		}
		spare.mu.Lock()
		copied := slices.Contains(spare.copiedSync, loc.Handle)
		spare.mu.Unlock()
		if fail {
			if len(l.Replicas) != 2 || copied {
				t.Fatalf("failed copy: %+v", l)
			}
			continue
		}
		if len(l.Replicas) != 3 || !slices.Contains(l.Replicas, spare.addr) || !copied {
			t.Fatalf("lost member not replaced before the lease: %+v (copied %v)", l, copied)
		}
		// The copy's own report changes nothing.
		spare.hb()
		if l2 := e.mustLookup("/f", 0, false, false); len(l2.Replicas) != 3 || spare.wasDeleted(loc.Handle) {
			t.Fatalf("after the copy's report: %+v", l2)
		}
		e.grants.checkOnePrimary(t)
	}
}

// TestReportOvertakenByBumpIgnored: a heartbeat taken before a version bump
// reaches the master after it; the member's old version in it is not
// staleness (the member confirmed the bump durably), so the member stays
// listed and keeps its copy.
func TestReportOvertakenByBumpIgnored(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/f", 3)
	before := e.mustLookup("/f", 0, false, true)
	l := e.mustLookup("/f", 0, true, false)
	if l.Version != before.Version+1 {
		t.Fatalf("lease: %+v", l)
	}
	member := e.css[l.Replicas[1]]
	resp, err := e.mc.Heartbeat(e.ctx(), &controlpb.HeartbeatRequest{Addr: member.addr, CapacityBytes: 1 << 40, FreeBytes: 1 << 40,
		Changed: []*controlpb.ChunkReport{{Handle: l.Handle, Version: before.Version}}})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(resp.Delete, l.Handle) {
		t.Fatal("member told to delete its copy on a report older than the bump")
	}
	if l2 := e.mustLookup("/f", 0, false, false); !slices.Contains(l2.Replicas, member.addr) || len(l2.Replicas) != 3 {
		t.Fatalf("member dropped on an overtaken report: %v", l2.Replicas)
	}
}
