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
//
// Each suspect's drop time is kept: a server dropped later took more of
// the lease's mutations. When a holder stands in as the last copy, the set
// remembers the drop time of what is listed (standIn, quality); a holder
// dropped later that comes back replaces the listed copies (faults B15).
type suspectSet struct {
	version uint64
	ids     []serverID
	holders []serverID
	dropped map[serverID]time.Time // when each suspect was dropped
	standIn bool                   // the listed replicas descend from a re-admitted holder
	quality time.Time              // that holder's drop time
}

// deferredReport is a chunk report that arrived while a lease change of the
// chunk was in flight; it is taken once the change is done.
type deferredReport struct {
	server serverID
	report *controlpb.ChunkReport
}

func (m *Master) markSuspectLocked(h uint64, c *chunk, id serverID, holder bool) {
	m.markSuspectAtLocked(h, c, id, holder, m.clock.Now())
}

// markSuspectAtLocked is markSuspectLocked with the drop time given: the
// copies a replaced stand-in left keep the stand-in's quality.
func (m *Master) markSuspectAtLocked(h uint64, c *chunk, id serverID, holder bool, dropped time.Time) {
	s := m.suspect[h]
	if s == nil || s.version != c.version {
		s = &suspectSet{version: c.version, dropped: map[serverID]time.Time{}}
		m.suspect[h] = s
	}
	if !slices.Contains(s.ids, id) {
		s.ids = append(s.ids, id)
	}
	s.dropped[id] = dropped
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
	delete(s.dropped, id)
	if len(s.ids) == 0 {
		// No suspect left to compare with a stand-in either.
		delete(m.suspect, h)
	}
}

// standInLocked re-admits holder id as the last copy of h: the listed
// copies are now only as complete as id was when it was dropped.
func (m *Master) standInLocked(h uint64, c *chunk, id serverID) {
	s := m.suspect[h]
	if s != nil && s.version == c.version {
		q := s.dropped[id]
		if !s.standIn || q.Before(s.quality) {
			s.standIn, s.quality = true, q
		}
	}
	m.unsuspectLocked(h, id)
	if !c.hasReplica(id) {
		c.replicas = append(c.replicas, id)
	}
}

// betterHolderLocked reports whether holder id, reporting h at the current
// version, was dropped later than the stand-in the listed copies descend
// from (so it holds mutations they lack). If so it replaces them: they
// become holders of the stand-in's quality, in-flight copies from them are
// stale, and id is the listed replica (faults B15).
func (m *Master) betterHolderLocked(h uint64, c *chunk, id serverID) bool {
	s := m.suspect[h]
	if s == nil || s.version != c.version || !s.standIn || !slices.Contains(s.holders, id) {
		return false
	}
	d, ok := s.dropped[id]
	if !ok || !d.After(s.quality) {
		return false
	}
	m.log.Warn("holder dropped later replaces the stand-in copies", "chunk", h, "server", m.servers[id].addr, "replaced", len(c.replicas))
	if j := m.copies[h]; j != nil {
		j.overtaken = true
	}
	quality := s.quality
	for _, r := range slices.Clone(c.replicas) {
		c.removeReplica(r)
		m.markSuspectAtLocked(h, c, r, true, quality)
	}
	s.quality = d
	m.unsuspectLocked(h, id)
	c.replicas = append(c.replicas, id)
	m.needCheck[h] = struct{}{}
	return true
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
		// Re-admit the live holder dropped last: it took the most of the
		// lease's mutations (faults B15).
		best := serverID(-1)
		for _, id := range s.holders {
			if m.servers[id].alive && (best < 0 || s.dropped[id].After(s.dropped[best])) {
				best = id
			}
		}
		if best >= 0 {
			m.log.Warn("suspect replica re-admitted: no other copy left", "chunk", h, "server", m.servers[best].addr)
			m.standInLocked(h, c, best)
		}
	case len(c.replicas) >= int(c.repl) || !m.leasedLocked(h, now):
		m.releaseHoldersLocked(h, s)
	}
}
