package master

import (
	"slices"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
)

// TestRefusedBumpKeepsReplicas: when no replica takes a version bump (all
// unreachable for a moment), the version stays and the replicas stay
// listed; nothing is deleted, and the next attempt succeeds (faults B9:
// the last copies of a chunk were dropped and deleted). The next attempt
// skips the number the failed one sent: a replica may hold it unconfirmed.
func TestRefusedBumpKeepsReplicas(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS("")}
	e.create("/f", 2)
	loc := e.mustLookup("/f", 0, false, true)
	for _, cs := range css {
		cs.mu.Lock()
		cs.failVersion = true
		cs.mu.Unlock()
	}
	if _, err := e.lookup("/f", 0, true, false); err == nil {
		t.Fatal("lease granted although no replica took the bump")
	}
	l := e.mustLookup("/f", 0, false, false)
	if l.Version != loc.Version || len(l.Replicas) != 2 {
		t.Fatalf("after a refused bump: %+v, want v%d on 2 replicas", l, loc.Version)
	}
	e.hbAll()
	for _, cs := range css {
		if cs.wasDeleted(loc.Handle) {
			t.Fatalf("%s told to delete the chunk after a refused bump", cs.addr)
		}
		cs.mu.Lock()
		cs.failVersion = false
		cs.mu.Unlock()
	}
	if l := e.mustLookup("/f", 0, true, false); l.Primary == "" || l.Version != loc.Version+2 || len(l.Replicas) != 2 {
		t.Fatalf("lease after the servers answer again: %+v, want v%d", l, loc.Version+2)
	}
}

// TestFailedBumpHolderNotReadmitted: a replica whose SetVersion answer was
// lost may hold the new version without being told of the lease that
// follows (faults B8: a restarted chunkserver with 0 bytes at the current
// version was listed). The master bumps again among those that answered
// before granting, so the lease's version is held by its members only; the
// replica is stale whichever version it took, and is never listed again at
// the current version either.
func TestFailedBumpHolderNotReadmitted(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true)
	bad := css[2]
	bad.mu.Lock()
	bad.failVersion = true
	bad.mu.Unlock()
	l := e.mustLookup("/f", 0, true, false)
	if l.Version != loc.Version+2 || slices.Contains(l.Replicas, bad.addr) || len(l.Replicas) != 2 {
		t.Fatalf("after a bump %s answered ambiguously: %+v, want v%d without it", bad.addr, l, loc.Version+2)
	}
	e.checkLease(l)
	for _, v := range []uint64{loc.Version + 1, l.Version} {
		// It did apply a bump (the answer was lost), restarts, and
		// reports that version.
		bad.mu.Lock()
		bad.failVersion = false
		bad.chunks[loc.Handle] = &fakeChunk{version: v}
		bad.mu.Unlock()
		e.clock.Advance(time.Second)
		bad.register()
		if l := e.mustLookup("/f", 0, false, false); slices.Contains(l.Replicas, bad.addr) {
			t.Fatalf("replica that missed the bump's answer listed again with v%d: %+v", v, l)
		}
		bad.hb()
		if !bad.wasDeleted(loc.Handle) {
			t.Fatalf("copy at v%d of a replica that is no member not deleted", v)
		}
	}
}

// TestNoCopyDuringLeaseGrant: no re-replication copy is scheduled while a
// lease is being granted (the version is bumped before the lease is
// recorded): such a copy would miss the lease's mutations at the same
// version (faults B13: 176 acknowledged records unreadable through it).
func TestNoCopyDuringLeaseGrant(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true)
	// One replica dies: below target, but no server to copy to.
	css[2].close()
	e.clock.Advance(e.opts.DeadAfter + time.Second)
	css[0].hb()
	css[1].hb()
	e.m.maintain() // declares css[2] dead
	// A lease grant starts and is held in SetVersion.
	hold := make(chan struct{})
	for _, cs := range css[:2] {
		cs.mu.Lock()
		cs.holdSetVersion = hold
		cs.mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { _, err := e.lookup("/f", 0, true, false); done <- err }()
	// The grant registers itself before it calls the replicas.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.m.mu.RLock()
		granting := e.m.granting[loc.Handle] != nil
		e.m.mu.RUnlock()
		if granting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease grant did not start")
		}
		time.Sleep(time.Millisecond)
	}
	// A spare joins meanwhile: the chunk could be copied to it, but not now.
	spare := e.addCS("")
	e.m.maintain()
	resp := spare.hb()
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("lease: %v", err)
	}
	if len(resp.Copy) != 0 {
		t.Fatalf("copy scheduled while a lease was being granted: %v", resp.Copy)
	}
}

// TestCopyToServerJoiningLater: a chunk below target with no server to
// copy to is copied once a server joins (faults B14: it stayed below
// target for good).
func TestCopyToServerJoiningLater(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	loc := e.mustLookup("/f", 0, false, true)
	css[2].close()
	e.clock.Advance(e.opts.DeadAfter + time.Second)
	css[0].hb()
	css[1].hb()
	e.m.maintain() // css[2] dead: 2 replicas, 2 live servers
	spare := e.addCS("")
	e.m.maintain()
	if resp := spare.hb(); len(resp.Copy) != 1 || resp.Copy[0].Handle != loc.Handle {
		t.Fatalf("no copy to the server that joined: %v", resp.Copy)
	}
	spare.hb() // reports the copy
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 3 || !slices.Contains(l.Replicas, spare.addr) {
		t.Fatalf("after the copy: %+v", l)
	}
}

// TestMembersLostOneByOne (faults B15): the members of a leased chunk die
// one after the other while it is being mutated. Each loss bumps the
// version among the survivors before the primary may mutate again, so a
// member that died earlier comes back stale: never listed, even when every
// later member is down, and replaced by its copies once the last one is
// back.
func TestMembersLostOneByOne(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	e.mustLookup("/f", 0, false, true)
	loc := e.mustLookup("/f", 0, true, false)
	// The primary dies last (a lost primary would hold up the next lease
	// until its own expired; that is TestLeaseNotGrantedOnUnknownOutcome).
	var order []*fakeCS
	for _, cs := range css {
		if cs.addr != loc.Primary {
			order = append(order, cs)
		}
	}
	order = append(order, e.css[loc.Primary])
	// die closes cs, lets the master declare it dead, and has the client's
	// next write ask for a lease; the survivors then grow.
	die := func(cs *fakeCS) {
		cs.close()
		e.clock.Advance(e.opts.DeadAfter + time.Second)
		e.hbAll()
		e.m.maintain()
		if l, err := e.lookup("/f", 0, true, false); err == nil {
			e.checkLease(l)
			if slices.Contains(l.Replicas, cs.addr) || l.Primary != loc.Primary {
				t.Fatalf("after %s died: %+v", cs.addr, l)
			}
		}
		for _, o := range css {
			o.mu.Lock()
			if c := o.chunks[loc.Handle]; !o.closed && c != nil {
				c.length += 1000
				o.changed[loc.Handle] = true
			}
			o.mu.Unlock()
		}
		e.hbAll()
	}
	first, second, third := order[0], order[1], order[2]
	die(first)
	die(second)
	first.restart() // stale: third took more at a later version
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{third.addr}) {
		t.Fatalf("after the first came back: %v, want only %s", l.Replicas, third.addr)
	}
	die(third)
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 0 {
		t.Fatalf("with every member dead: %v listed, want none", l.Replicas)
	}
	second.restart()
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 0 {
		t.Fatalf("after the second came back: %v listed, want none (it is stale)", l.Replicas)
	}
	e.hbAll()
	if second.wasDeleted(loc.Handle) {
		t.Fatal("a stale copy deleted while no member is alive")
	}
	third.restart()
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{third.addr}) {
		t.Fatalf("after the third came back: %v, want it listed alone", l.Replicas)
	}
	e.hbAll()
	// The stale copies are kept until the member's copies replace them.
	want, _ := third.has(loc.Handle)
	e.pastGrace()
	e.hbAll()
	for range 4 {
		e.m.maintain()
		e.hbAll()
	}
	if l := e.mustLookup("/f", 0, false, false); len(l.Replicas) != 3 || l.Version != want.version {
		t.Fatalf("once the member is back: %+v, want 3 replicas at version %d", l, want.version)
	}
	for _, cs := range []*fakeCS{first, second} {
		if c, ok := cs.has(loc.Handle); !ok || c != want {
			t.Fatalf("%s's stale copy not replaced by the member's: %+v, %v", cs.addr, c, ok)
		}
	}
	e.grants.checkOnePrimary(t)
}

// checkLease fails unless the primary of loc holds a lease naming exactly
// loc's other replicas.
func (e *env) checkLease(loc *controlpb.ChunkLocation) {
	e.t.Helper()
	p := e.css[loc.Primary]
	if p == nil {
		e.t.Fatalf("no primary in %+v", loc)
	}
	var want []string
	for _, r := range loc.Replicas {
		if r != loc.Primary {
			want = append(want, r)
		}
	}
	slices.Sort(want)
	p.mu.Lock()
	got, applyCap := p.leaseSecondaries[loc.Handle], p.applyCaps[loc.Handle]
	p.mu.Unlock()
	if !slices.Equal(got, want) {
		e.t.Fatalf("lease on chunk %x names secondaries %v, replicas are %v", loc.Handle, got, loc.Replicas)
	}
	// Only the primary gets the capability to send apply rounds.
	if c, err := capability.Decode(applyCap); err != nil || c.Handle != loc.Handle || c.Ops != capability.OpApply {
		e.t.Fatalf("lease on chunk %x came with apply capability %v, %v", loc.Handle, c, err)
	}
}
