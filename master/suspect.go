package master

import (
	"slices"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
)

// suspectSet lists servers whose copy of a chunk must not be admitted again
// at version: they were dropped while the chunk may have been mutating at
// that same version (a lease was active: the server died, restarted, or its
// copy was reported bad, trimmed, or copied before a bump). A version number
// cannot show what they missed; the next lease bumps the version, which
// makes the set obsolete.
//
// Holders are suspects whose copy is kept (not known bad, not told to
// delete): should every listed replica vanish they are re-admitted, better
// a possibly incomplete copy than none; once the chunk is back at its target
// (or its version moved) they are told to delete it.
type suspectSet struct {
	version uint64
	ids     []serverID
	holders []serverID
}

// deferredReport is a chunk report that arrived while a lease change of the
// chunk was in flight; it is taken once the change is done.
type deferredReport struct {
	server serverID
	report *controlpb.ChunkReport
}

func (m *Master) markSuspectLocked(h uint64, c *chunk, id serverID, holder bool) {
	s := m.suspect[h]
	if s == nil || s.version != c.version {
		s = &suspectSet{version: c.version}
		m.suspect[h] = s
	}
	if !slices.Contains(s.ids, id) {
		s.ids = append(s.ids, id)
	}
	i := slices.Index(s.holders, id)
	switch {
	case holder && i < 0:
		s.holders = append(s.holders, id)
	case !holder && i >= 0:
		s.holders = slices.Delete(s.holders, i, i+1)
	}
}

func (m *Master) isSuspectLocked(h uint64, c *chunk, id serverID) bool {
	s := m.suspect[h]
	return s != nil && s.version == c.version && slices.Contains(s.ids, id)
}

// isHolderLocked reports whether id's suspect copy of h is being kept.
func (m *Master) isHolderLocked(h uint64, id serverID) bool {
	s := m.suspect[h]
	return s != nil && slices.Contains(s.holders, id)
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
	if i := slices.Index(s.holders, id); i >= 0 {
		s.holders = slices.Delete(s.holders, i, i+1)
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
	m.markSuspectLocked(h, c, id, false)
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

// pruneSuspectsLocked drops obsolete sets: chunk gone, or version moved
// (the holders' copies are stale now: deleted when a listed replica exists).
func (m *Master) pruneSuspectsLocked() {
	for h, s := range m.suspect {
		c := m.st.chunks[h]
		if c != nil && c.version == s.version {
			continue
		}
		if c != nil && len(c.replicas) > 0 {
			m.releaseHoldersLocked(h, s)
		}
		delete(m.suspect, h)
	}
}

// releaseHoldersLocked tells live holders to delete their copies (dead
// ones stay holders: they may come back with the best copy left).
func (m *Master) releaseHoldersLocked(h uint64, s *suspectSet) {
	kept := s.holders[:0]
	for _, id := range s.holders {
		if m.servers[id].alive {
			m.queueDeleteLocked(id, h)
		} else {
			kept = append(kept, id)
		}
	}
	s.holders = kept
}

// settleSuspectsLocked runs for a chunk the maintenance loop checks: with
// no listed replica left, live holders are re-admitted; at or above target,
// or once the lease is over (the holders would otherwise block themselves
// as copy targets), holders are told to delete their copies.
func (m *Master) settleSuspectsLocked(h uint64, c *chunk, now time.Time) {
	s := m.suspect[h]
	if s == nil || s.version != c.version {
		return
	}
	switch {
	case len(c.replicas) == 0:
		for _, id := range slices.Clone(s.holders) {
			if m.servers[id].alive && !c.hasReplica(id) {
				m.log.Warn("suspect replica re-admitted: no other copy left", "chunk", h, "server", m.servers[id].addr)
				c.replicas = append(c.replicas, id)
				m.unsuspectLocked(h, id)
			}
		}
	case len(c.replicas) >= int(c.repl) || !m.leasedLocked(h, now):
		m.releaseHoldersLocked(h, s)
	}
}
