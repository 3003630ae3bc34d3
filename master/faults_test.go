package master

import (
	"slices"
	"testing"
	"time"
)

// TestRefusedBumpKeepsReplicas: when no replica takes a version bump (all
// unreachable for a moment), the version stays and the replicas stay
// listed; nothing is deleted, and the next attempt succeeds (faults B9:
// the last copies of a chunk were dropped and deleted).
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
	if l := e.mustLookup("/f", 0, true, false); l.Primary == "" || l.Version != loc.Version+1 || len(l.Replicas) != 2 {
		t.Fatalf("lease after the servers answer again: %+v", l)
	}
}

// TestFailedBumpHolderNotReadmitted: a replica whose SetVersion answer was
// lost may hold the new version without the mutations of the lease that
// follows; coming back with that version it is not listed again (faults B8:
// a restarted chunkserver with 0 bytes at the current version was listed).
// Its copy may be kept as a suspect holder.
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
	if l.Version != loc.Version+1 || slices.Contains(l.Replicas, bad.addr) {
		t.Fatalf("after a bump %s missed: %+v", bad.addr, l)
	}
	// It did apply the bump (the answer was lost), restarts, and reports
	// the current version.
	bad.mu.Lock()
	bad.failVersion = false
	bad.chunks[loc.Handle].version = l.Version
	bad.mu.Unlock()
	e.clock.Advance(time.Second)
	bad.register()
	if l := e.mustLookup("/f", 0, false, false); slices.Contains(l.Replicas, bad.addr) {
		t.Fatalf("replica that missed the bump's answer listed again at v%d: %+v", l.Version, l)
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

// TestLaterDroppedHolderReplacesStandIn: replicas die one after the other
// during a lease; the first to die comes back first and stands in as the
// last copy, but it misses what the others took after its death. When a
// replica that died later comes back, it replaces the stand-in (faults
// B15: the complete copies were deleted and acknowledged appends lost).
func TestLaterDroppedHolderReplacesStandIn(t *testing.T) {
	e := newEnv(t, nil)
	e.pastGrace()
	css := []*fakeCS{e.addCS(""), e.addCS(""), e.addCS("")}
	e.create("/f", 3)
	e.mustLookup("/f", 0, false, true)
	loc := e.mustLookup("/f", 0, true, false) // lease: the chunk is being mutated
	// die closes cs and lets the master declare it dead; the others grow.
	die := func(cs *fakeCS) {
		cs.close()
		e.clock.Advance(e.opts.DeadAfter + time.Second)
		for _, o := range css {
			o.mu.Lock()
			alive := !o.closed
			if c := o.chunks[loc.Handle]; alive && c != nil {
				c.length += 1000
				o.changed[loc.Handle] = true
			}
			o.mu.Unlock()
			if alive {
				o.hb()
			}
		}
		e.m.maintain()
	}
	first, second, third := css[0], css[1], css[2]
	die(first)
	die(second)
	first.restart() // not listed: third still is
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{third.addr}) {
		t.Fatalf("after the first came back: %v, want only %s", l.Replicas, third.addr)
	}
	die(third)
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{first.addr}) {
		t.Fatalf("with every other replica dead: %v, want the stand-in %s", l.Replicas, first.addr)
	}
	second.restart()
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{second.addr}) {
		t.Fatalf("after the second came back: %v, want it to replace the stand-in", l.Replicas)
	}
	third.restart()
	if l := e.mustLookup("/f", 0, false, false); !slices.Equal(l.Replicas, []string{third.addr}) {
		t.Fatalf("after the third came back: %v, want it (dropped last) listed alone", l.Replicas)
	}
}
