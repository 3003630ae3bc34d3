package chunkserver

import (
	"slices"
	"sync"
	"time"

	"github.com/gfs-go/gfs/dataplane/store"
)

// lease is this server's primaryship of one chunk.
type lease struct {
	version     uint64
	expiry      time.Time // by this server's monotonic clock, margin already subtracted
	secondaries []string  // the other replicas at version, sorted (GrantLease)
	applyCap    []byte    // the master's apply capability, shown to the secondaries
}

// sameReplicas reports whether chain names exactly the lease's secondaries,
// in any order (chains are a handful of addresses: quadratic is fine).
func (l *lease) sameReplicas(chain []string) bool {
	if len(chain) != len(l.secondaries) {
		return false
	}
	for i, a := range chain {
		if !slices.Contains(l.secondaries, a) || slices.Contains(chain[:i], a) {
			return false
		}
	}
	return true
}

// leaseTable holds the leases this server was granted.
type leaseTable struct {
	mu sync.Mutex
	m  map[store.Handle]lease // guarded by mu
	// tainted marks leases under which a round failed on a replica: the
	// primary stops asking for their extension, so the lease runs out and
	// the master's next grant bumps the version, which turns a replica
	// that missed mutations into a visibly stale one (GFS 4.5). Guarded by mu.
	tainted map[store.Handle]bool
}

func (t *leaseTable) init() {
	t.m = make(map[store.Handle]lease)
	t.tainted = make(map[store.Handle]bool)
}

// taint stops extension requests for the lease on h.
func (t *leaseTable) taint(h store.Handle) {
	t.mu.Lock()
	if _, ok := t.m[h]; ok {
		t.tainted[h] = true
	}
	t.mu.Unlock()
}

// wantsExtension reports whether h's lease is held, unexpired and untainted.
func (t *leaseTable) wantsExtension(h store.Handle, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[h]
	return ok && now.Before(l.expiry) && !t.tainted[h]
}

// effective returns how long a lease of d counts here: d minus the margin,
// the margin capped to a tenth of d.
func effective(d, margin time.Duration) time.Duration {
	if margin > d/10 {
		margin = d / 10
	}
	return d - margin
}

// grant records a lease counted from start, with the other replicas of the
// chunk at version.
func (t *leaseTable) grant(h store.Handle, version uint64, secondaries []string, applyCap []byte, start time.Time, d, margin time.Duration) {
	secs := slices.Clone(secondaries)
	slices.Sort(secs)
	t.mu.Lock()
	t.m[h] = lease{version: version, expiry: start.Add(effective(d, margin)), secondaries: secs, applyCap: slices.Clone(applyCap)}
	delete(t.tainted, h)
	t.mu.Unlock()
}

// extend moves a held lease's expiry later (never earlier) if it is still
// at version, and takes a fresh apply capability when one came with it.
func (t *leaseTable) extend(h store.Handle, version uint64, applyCap []byte, start time.Time, d, margin time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.m[h]
	if !ok || l.version != version {
		return
	}
	if exp := start.Add(effective(d, margin)); exp.After(l.expiry) {
		l.expiry = exp
	}
	if len(applyCap) > 0 {
		l.applyCap = slices.Clone(applyCap)
	}
	t.m[h] = l
}

func (t *leaseTable) revoke(h store.Handle) {
	t.mu.Lock()
	delete(t.m, h)
	delete(t.tainted, h)
	t.mu.Unlock()
}

// valid reports whether this server is primary of h at version now.
func (t *leaseTable) valid(h store.Handle, version uint64, now time.Time) bool {
	_, ok := t.validLease(h, version, now)
	return ok
}

// validLease returns the lease on h if this server is primary of h at
// version now.
func (t *leaseTable) validLease(h store.Handle, version uint64, now time.Time) (lease, bool) {
	t.mu.Lock()
	l, ok := t.m[h]
	t.mu.Unlock()
	return l, ok && l.version == version && now.Before(l.expiry)
}

// held returns the lease for h if one is held and unexpired.
func (t *leaseTable) held(h store.Handle, now time.Time) (lease, bool) {
	t.mu.Lock()
	l, ok := t.m[h]
	if ok && !now.Before(l.expiry) {
		delete(t.m, h)
		ok = false
	}
	t.mu.Unlock()
	return l, ok
}

// changeTracker collects what the next heartbeat reports: chunks changed or
// removed since the last one, and chunks mutated (lease extension wanted).
type changeTracker struct {
	mu      sync.Mutex
	dirty   map[store.Handle]struct{} // guarded by mu
	removed map[store.Handle]struct{} // guarded by mu
	mutated map[store.Handle]struct{} // guarded by mu
}

func (t *changeTracker) init() {
	t.dirty = make(map[store.Handle]struct{})
	t.removed = make(map[store.Handle]struct{})
	t.mutated = make(map[store.Handle]struct{})
}

// changed notes a chunk whose metadata (version, length, corruption) changed.
func (t *changeTracker) changed(h store.Handle) {
	t.mu.Lock()
	t.dirty[h] = struct{}{}
	delete(t.removed, h)
	t.mu.Unlock()
}

// mutatedChunk notes a mutation applied to h (as primary or secondary).
func (t *changeTracker) mutatedChunk(h store.Handle) {
	t.mu.Lock()
	t.dirty[h] = struct{}{}
	t.mutated[h] = struct{}{}
	t.mu.Unlock()
}

func (t *changeTracker) removedChunk(h store.Handle) {
	t.mu.Lock()
	delete(t.dirty, h)
	delete(t.mutated, h)
	t.removed[h] = struct{}{}
	t.mu.Unlock()
}

// take returns and clears the collected sets.
func (t *changeTracker) take() (changed, removed, mutated map[store.Handle]struct{}) {
	t.mu.Lock()
	changed, removed, mutated = t.dirty, t.removed, t.mutated
	t.dirty = make(map[store.Handle]struct{})
	t.removed = make(map[store.Handle]struct{})
	t.mutated = make(map[store.Handle]struct{})
	t.mu.Unlock()
	return changed, removed, mutated
}

// restore merges sets back after a failed heartbeat (newer events win).
func (t *changeTracker) restore(changed, removed, mutated map[store.Handle]struct{}) {
	t.mu.Lock()
	for h := range mutated {
		t.mutated[h] = struct{}{}
	}
	for h := range changed {
		if _, gone := t.removed[h]; !gone {
			t.dirty[h] = struct{}{}
		}
	}
	for h := range removed {
		if _, back := t.dirty[h]; !back {
			t.removed[h] = struct{}{}
		}
	}
	t.mu.Unlock()
}
