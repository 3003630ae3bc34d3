package master

import (
	"slices"
	"sort"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
)

// maintain is one round of background work: declare silent chunkservers
// dead, expire stuck copies, re-replicate (most urgent first), trim extra
// replicas, rebalance, and reclaim deleted files after the grace period.
func (m *Master) maintain() {
	m.mu.Lock()
	now := m.clock.Now()
	for _, s := range m.servers {
		if s.alive && now.Sub(s.lastSeen) > m.opts.DeadAfter {
			m.log.Warn("chunkserver dead", "server", s.addr, "silent", now.Sub(s.lastSeen))
			s.alive = false
			m.serverDownLocked(s)
		}
	}
	// An expired lease no longer constrains grants: drop it so the table
	// stays small.
	for h, l := range m.leases {
		if !l.expiry.After(now) && m.granting[h] == nil {
			delete(m.leases, h)
		}
	}
	m.settleKeptBadLocked()
	for h, j := range m.copies {
		if now.After(j.deadline) {
			m.log.Warn("copy timed out", "chunk", h, "target", m.servers[j.target].addr)
			m.endCopyLocked(h, j)
			m.needCheck[h] = struct{}{}
		}
	}
	if !now.Before(m.settleUntil) {
		m.replicateLocked(now)
		if m.opts.RebalanceThreshold > 0 {
			m.rebalanceLocked(now)
		}
	}
	var reclaim []uint64
	for id, t := range m.st.trash {
		if now.Sub(time.UnixMilli(t.deletedMs)) >= m.opts.GCGrace {
			reclaim = append(reclaim, id)
		}
	}
	m.mu.Unlock()
	for _, id := range reclaim {
		m.reclaim(id)
	}
}

// reclaim drops a deleted file's chunks: the op log forgets them, and the
// chunkservers holding them are told to delete them (and would be anyway:
// chunks no file references are orphans when reported).
func (m *Master) reclaim(id uint64) {
	m.mu.Lock()
	t := m.st.trash[id]
	if t == nil {
		m.mu.Unlock()
		return
	}
	type del struct {
		h  uint64
		rs []serverID
	}
	var dels []del
	for _, h := range t.chunks {
		if c := m.st.chunks[h]; c != nil {
			dels = append(dels, del{h, append(slices.Clone(c.replicas), m.unlisted[h]...)})
		}
	}
	tk, err := m.applyLocked(newRec(opReclaim).u(id).b)
	if err == nil {
		for _, d := range dels {
			for _, r := range d.rs {
				m.queueDeleteLocked(r, d.h)
			}
			delete(m.leases, d.h)
			delete(m.needCheck, d.h)
			delete(m.unlisted, d.h)
			delete(m.keptBad, d.h)
			delete(m.floor, d.h)
			if j := m.copies[d.h]; j != nil {
				m.endCopyLocked(d.h, j)
			}
		}
	}
	m.mu.Unlock()
	if err != nil {
		m.log.Error("reclaim", "trash", id, "err", err)
		return
	}
	if err := m.waitDurable(tk); err == nil {
		m.log.Info("reclaimed deleted file", "path", t.path, "chunks", len(t.chunks))
	}
}

// leasedLocked reports whether h has a lease that may be valid: its data may
// be changing, so it is not copied now (a copy could miss mutations while
// looking up to date).
func (m *Master) leasedLocked(h uint64, now time.Time) bool {
	l := m.leases[h]
	return l != nil && l.expiry.After(now)
}

func (m *Master) liveServersLocked() int {
	n := 0
	for _, s := range m.servers {
		if s.alive {
			n++
		}
	}
	return n
}

// replicateLocked schedules copies for chunks below their target, fewest
// live replicas first, within MaxCopiesPerServer per chunkserver, and
// deletes replicas above the target.
func (m *Master) replicateLocked(now time.Time) {
	live := m.liveServersLocked()
	type want struct {
		h    uint64
		have int
	}
	var under []want
	for h := range m.needCheck {
		c := m.st.chunks[h]
		if c == nil || c.flags&chunkTrashed != 0 {
			delete(m.needCheck, h)
			continue
		}
		have, target := m.liveReplicasLocked(c), int(c.repl)
		switch {
		case have > target:
			if m.copies[h] == nil && !m.leasedLocked(h, now) {
				m.trimLocked(h, c, have-target)
				delete(m.needCheck, h)
			}
		case have == target:
			if m.copies[h] == nil {
				delete(m.needCheck, h)
			}
		default:
			// Below target: stays checked until it is at target, also
			// while nothing can be done (no copy, no free server, leased).
			if have > 0 && have < live && m.copies[h] == nil {
				under = append(under, want{h, have})
			}
		}
	}
	sort.Slice(under, func(i, j int) bool { return under[i].have < under[j].have })
	for _, w := range under {
		if m.leasedLocked(w.h, now) {
			continue
		}
		m.scheduleCopyLocked(w.h, m.st.chunks[w.h], now, false, -1)
	}
}

// scheduleCopyLocked sends a copy of h to a new target (not holding it, most
// free space, distinct rack when possible) from the least busy good
// replica, other than avoid. It reports whether a copy was scheduled.
func (m *Master) scheduleCopyLocked(h uint64, c *chunk, now time.Time, rebalance bool, avoid serverID) bool {
	if m.granting[h] != nil {
		// A lease is being granted: the version may already be bumped
		// with no lease recorded yet; a copy now would miss the new
		// lease's mutations at the same version (faults B13).
		return false
	}
	max := m.opts.MaxCopiesPerServer
	src := serverID(-1)
	for _, r := range c.replicas {
		s := m.servers[r]
		if !s.alive || s.copiesOut >= max || (r == avoid && m.liveReplicasLocked(c) > 1) || slices.Contains(m.keptBad[h], r) {
			// Never from a copy known bad (kept as the last one): the
			// copy would pass it off as good.
			continue
		}
		if src < 0 || s.copiesOut < m.servers[src].copiesOut {
			src = r
		}
	}
	if src < 0 {
		return false
	}
	racks := map[string]bool{}
	for _, r := range c.replicas {
		racks[m.servers[r].rack] = true
	}
	targets := m.placeLocked(len(m.servers), func(id serverID) bool {
		return c.hasReplica(id) || m.servers[id].copiesIn >= max
	})
	if len(targets) == 0 {
		return false
	}
	dst := targets[0]
	for _, t := range targets {
		if r := m.servers[t].rack; r != "" && !racks[r] {
			dst = t
			break
		}
	}
	cmd, _, err := m.startCopyLocked(h, c.version, src, dst, now, rebalance)
	if err != nil {
		m.log.Error("copy not scheduled: capability", "chunk", h, "err", err)
		return false
	}
	m.servers[dst].pendingCopy = append(m.servers[dst].pendingCopy, cmd)
	m.log.Info("copy scheduled", "chunk", h, "version", c.version, "from", m.servers[src].addr, "to", m.servers[dst].addr, "replicas", m.liveReplicasLocked(c), "rebalance", rebalance)
	return true
}

// startCopyLocked records a copy of chunk h at version v from src to dst
// as in flight and returns the command for dst, with the copy capability
// dst shows src (chunk h only).
func (m *Master) startCopyLocked(h, v uint64, src, dst serverID, now time.Time, rebalance bool) (*controlpb.CopyCommand, *copyJob, error) {
	tok, err := m.keys.Issue(nil, h, capability.OpCopy, 0)
	if err != nil {
		return nil, nil, err
	}
	j := &copyJob{target: dst, source: src, version: v, deadline: now.Add(m.opts.CopyTimeout), rebalance: rebalance}
	m.copies[h] = j
	m.servers[dst].copiesIn++
	m.servers[src].copiesOut++
	m.servers[dst].recentAllocs++
	// The copy replaces whatever dst holds: a delete queued for that must
	// not reach it afterwards.
	delete(m.servers[dst].pendingDelete, h)
	return &controlpb.CopyCommand{Handle: h, Version: v, Source: m.servers[src].addr, Capability: tok}, j, nil
}

// usedFraction is how full a chunkserver says it is (0 when unknown).
func usedFraction(s *server) float64 {
	if s.capacity <= 0 {
		return 0
	}
	return 1 - float64(s.free)/float64(s.capacity)
}

// trimLocked deletes n extra live replicas of h, from the fullest
// chunkservers.
func (m *Master) trimLocked(h uint64, c *chunk, n int) {
	var rs []serverID
	for _, r := range c.replicas {
		if m.servers[r].alive {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return usedFraction(m.servers[rs[i]]) > usedFraction(m.servers[rs[j]]) })
	for _, r := range rs[:n] {
		m.dropReplicaLocked(h, c, r)
		m.log.Info("extra replica deleted", "chunk", h, "server", m.servers[r].addr)
	}
}

// rebalanceLocked moves one chunk off the fullest chunkserver when it is
// more than RebalanceThreshold fuller than the emptiest: a copy to an
// emptier server, after which the extra replica is trimmed from the fullest.
func (m *Master) rebalanceLocked(now time.Time) {
	var full, empty *server
	for _, s := range m.servers {
		if !s.alive || s.capacity <= 0 {
			continue
		}
		if full == nil || usedFraction(s) > usedFraction(full) {
			full = s
		}
		if empty == nil || usedFraction(s) < usedFraction(empty) {
			empty = s
		}
	}
	if full == nil || full == empty || usedFraction(full)-usedFraction(empty) <= m.opts.RebalanceThreshold {
		return
	}
	if full.copiesOut >= m.opts.MaxCopiesPerServer {
		return
	}
	// Find a quiet, fully replicated chunk on the full server (bounded scan).
	scanned := 0
	for h, c := range m.st.chunks {
		if scanned++; scanned > 100000 {
			return
		}
		if c.flags&chunkTrashed != 0 || !c.hasReplica(full.id) || m.liveReplicasLocked(c) < int(c.repl) ||
			m.copies[h] != nil || m.leasedLocked(h, now) {
			continue
		}
		if m.scheduleCopyLocked(h, c, now, true, -1) {
			m.needCheck[h] = struct{}{}
		}
		return
	}
}
