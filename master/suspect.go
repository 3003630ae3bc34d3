package master

import (
	"slices"

	"github.com/gfs-go/gfs/control/controlpb"
)

// suspectSet lists servers whose copy of a chunk must not be admitted again
// at version: they were dropped while the chunk may have been mutating at
// that same version (a lease was active: the server died, restarted, or its
// copy was reported bad, trimmed, or copied before a bump). A version number
// cannot show what they missed; the next lease bumps the version, which
// makes the set obsolete.
type suspectSet struct {
	version uint64
	ids     []serverID
}

// deferredReport is a chunk report that arrived while a lease change of the
// chunk was in flight; it is taken once the change is done.
type deferredReport struct {
	server serverID
	report *controlpb.ChunkReport
}

func (m *Master) markSuspectLocked(h uint64, c *chunk, id serverID) {
	s := m.suspect[h]
	if s == nil || s.version != c.version {
		s = &suspectSet{version: c.version}
		m.suspect[h] = s
	}
	if !slices.Contains(s.ids, id) {
		s.ids = append(s.ids, id)
	}
}

func (m *Master) isSuspectLocked(h uint64, c *chunk, id serverID) bool {
	s := m.suspect[h]
	return s != nil && s.version == c.version && slices.Contains(s.ids, id)
}

// unsuspectLocked forgets id for h (its copy is gone, or it is the last one).
func (m *Master) unsuspectLocked(h uint64, id serverID) {
	s := m.suspect[h]
	if s == nil {
		return
	}
	if i := slices.Index(s.ids, id); i >= 0 {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	if len(s.ids) == 0 {
		delete(m.suspect, h)
	}
}

// dropReplicaLocked removes id from h's replicas for good at this version:
// marked suspect (its reports cannot re-add it) and told to delete its copy
// when another replica is listed.
func (m *Master) dropReplicaLocked(h uint64, c *chunk, id serverID) {
	c.removeReplica(id)
	m.markSuspectLocked(h, c, id)
	if len(c.replicas) > 0 {
		m.queueDeleteLocked(id, h)
	}
	m.needCheck[h] = struct{}{}
}

// takeDeferredLocked processes the reports held back during a lease change.
func (m *Master) takeDeferredLocked(h uint64) {
	reps := m.deferred[h]
	delete(m.deferred, h)
	for _, d := range reps {
		if s := m.servers[d.server]; s.alive {
			m.reportLocked(s, d.report)
		}
	}
}

// pruneSuspectsLocked drops obsolete sets (version moved, chunk gone).
func (m *Master) pruneSuspectsLocked() {
	for h, s := range m.suspect {
		if c := m.st.chunks[h]; c == nil || c.version != s.version {
			delete(m.suspect, h)
		}
	}
}
