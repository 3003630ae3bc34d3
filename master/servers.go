package master

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/master/oplog"
)

// server is the master's view of one chunkserver. Never removed: a dead
// server keeps its id and comes back alive by registering again.
type server struct {
	id            serverID
	addr, rack    string
	capacity      int64
	free          int64
	load          int32
	lastSeen      time.Time
	alive         bool
	recentAllocs  int                 // chunks placed here since its last heartbeat
	pendingDelete map[uint64]struct{} // sent with the next heartbeat reply
	pendingCopy   []*controlpb.CopyCommand
	copiesIn      int // copies in flight with this server as target
	copiesOut     int // ... as source
}

// copyJob is a re-replication copy in flight.
type copyJob struct {
	target, source serverID
	version        uint64
	deadline       time.Time
	rebalance      bool
	overtaken      bool // a lease grant started after it was scheduled: stale when reported
}

// maxReportChunks bounds one report (a message cap guards the wire too).
const maxReportChunks = 10_000_000

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || port == "0" {
		return errCode(codeBadArg, "bad chunkserver address %q: want HOST:PORT", addr)
	}
	return nil
}

// Register adds (or re-adds) a chunkserver with its full chunk report.
func (m *Master) Register(ctx context.Context, req *controlpb.RegisterRequest) (*controlpb.RegisterResponse, error) {
	addr := req.GetAddr()
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	if len(req.GetChunks()) > maxReportChunks {
		return nil, errCode(codeBadArg, "register %s: report of %d chunks too large", addr, len(req.GetChunks()))
	}
	m.mu.Lock()
	id, known := m.byAddr[addr]
	var s *server
	if known {
		s = m.servers[id]
		// A restart: whatever it held before is replaced by this report.
		m.forgetServerLocked(s, s.lastSeen)
	} else {
		id = serverID(len(m.servers))
		s = &server{id: id, addr: addr}
		m.servers = append(m.servers, s)
		m.byAddr[addr] = id
	}
	s.rack = req.GetRack()
	s.capacity, s.free = req.GetCapacityBytes(), req.GetFreeBytes()
	s.lastSeen = m.clock.Now()
	s.alive = true
	s.pendingDelete = make(map[uint64]struct{})
	var tickets []oplog.Ticket
	reported := make(map[uint64]struct{}, len(req.GetChunks()))
	for _, r := range req.GetChunks() {
		reported[r.GetHandle()] = struct{}{}
		if t, ok := m.reportLocked(s, r); ok {
			tickets = append(tickets, t)
		}
	}
	// Suspect marks for chunks it does not hold are moot (they would keep
	// it from ever being a copy target for them).
	for h, set := range m.suspect {
		if _, ok := reported[h]; !ok && slices.Contains(set.ids, s.id) {
			m.unsuspectLocked(h, s.id)
		}
	}
	m.mu.Unlock()
	if known {
		// Calls that failed while it was down left the connection in
		// reconnect backoff: reconnect now, so that calls right after
		// this registration reach it (faults B12: chunks were created on
		// fewer servers meanwhile).
		m.reconnect(ctx, addr)
	}
	m.log.Info("chunkserver registered", "server", addr, "rack", s.rack, "chunks", len(req.GetChunks()), "again", known)
	for _, t := range tickets {
		if err := m.waitDurable(t); err != nil {
			return nil, err
		}
	}
	keys, err := m.capabilityKeys()
	if err != nil {
		return nil, err
	}
	return &controlpb.RegisterResponse{
		HeartbeatIntervalMs: m.opts.HeartbeatInterval.Milliseconds(),
		ChunkSize:           m.opts.ChunkSize,
		CapabilityKeys:      keys,
	}, nil
}

// Heartbeat takes a chunkserver's load, chunk changes and lease extension
// requests, and answers with extensions, deletions and copy commands.
func (m *Master) Heartbeat(ctx context.Context, req *controlpb.HeartbeatRequest) (*controlpb.HeartbeatResponse, error) {
	addr := req.GetAddr()
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	if len(req.GetChanged()) > maxReportChunks || len(req.GetRemoved()) > maxReportChunks {
		return nil, errCode(codeBadArg, "heartbeat %s: report too large", addr)
	}
	// Before any state changes: failing here loses no commands.
	keys, err := m.capabilityKeys()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	id, known := m.byAddr[addr]
	if !known || !m.servers[id].alive {
		m.mu.Unlock()
		return &controlpb.HeartbeatResponse{Reregister: true}, nil
	}
	s := m.servers[id]
	now := m.clock.Now()
	s.lastSeen = now
	s.free, s.capacity, s.load = req.GetFreeBytes(), req.GetCapacityBytes(), req.GetActiveMutations()
	s.recentAllocs = 0
	if req.GetFullReport() {
		m.forgetServerLocked(s, time.Time{})
	}
	var tickets []oplog.Ticket
	for _, r := range req.GetChanged() {
		if t, ok := m.reportLocked(s, r); ok {
			tickets = append(tickets, t)
		}
	}
	for _, h := range req.GetRemoved() {
		if c := m.st.chunks[h]; c != nil && c.removeReplica(s.id) {
			if m.leasedLocked(h, now) {
				m.markSuspectLocked(h, c, s.id, false)
			}
			m.needCheck[h] = struct{}{}
		} else {
			m.unsuspectLocked(h, s.id)
		}
		if j := m.copies[h]; j != nil && j.target == s.id {
			m.endCopyLocked(h, j)
		}
	}
	resp := &controlpb.HeartbeatResponse{}
	for _, h := range req.GetLeaseExtensions() {
		if ext := m.extendLocked(s, h, now); ext != nil {
			resp.Extensions = append(resp.Extensions, ext)
		} else {
			resp.Revoked = append(resp.Revoked, h)
		}
	}
	for h := range s.pendingDelete {
		resp.Delete = append(resp.Delete, h)
	}
	clear(s.pendingDelete)
	resp.Copy, s.pendingCopy = s.pendingCopy, nil
	resp.CapabilityKeys = keys
	m.mu.Unlock()
	for _, t := range tickets {
		if err := m.waitDurable(t); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// extendLocked extends the lease on h held by s, counted from now (when the
// master processes the request, which is after the chunkserver sent it, from
// when the chunkserver counts). Refused when s is not the current primary,
// the version moved, a grant is in flight or the master is in its restart
// grace period.
func (m *Master) extendLocked(s *server, h uint64, now time.Time) *controlpb.LeaseExtension {
	c := m.st.chunks[h]
	l := m.leases[h]
	if c == nil || c.flags&chunkTrashed != 0 || l == nil || l.primary != s.id || l.version != c.version || l.noRegrant ||
		!c.hasReplica(s.id) || m.granting[h] != nil || (h < m.graceCeiling && now.Before(m.graceUntil)) {
		return nil
	}
	l.expiry = now.Add(m.opts.LeaseTTL)
	l.confirmed = true
	return &controlpb.LeaseExtension{Handle: h, Version: c.version, LeaseMs: m.opts.LeaseTTL.Milliseconds()}
}

// reportLocked takes one chunk report from s. It returns a ticket when the
// report made the master adopt a higher version (to wait on after
// unlocking).
func (m *Master) reportLocked(s *server, r *controlpb.ChunkReport) (oplog.Ticket, bool) {
	h := r.GetHandle()
	c := m.st.chunks[h]
	if c == nil {
		if _, ok := m.allocating[h]; !ok {
			// Orphan: no file references it (never committed, or reclaimed).
			m.queueDeleteLocked(s.id, h)
		}
		return oplog.Ticket{}, false
	}
	if m.granting[h] != nil {
		// A lease change is in flight and decides the replica set; take
		// the report once it is done.
		m.deferred[h] = append(m.deferred[h], deferredReport{server: s.id, report: r})
		return oplog.Ticket{}, false
	}
	staleCopy := false
	if j := m.copies[h]; j != nil && j.target == s.id {
		// A copy made before a version bump may miss mutations of the new
		// lease whatever version the target reports.
		staleCopy = j.version != c.version || j.overtaken
		m.endCopyLocked(h, j)
	}
	if r.GetCorrupt() || (staleCopy && !c.hasReplica(s.id)) {
		m.dropReplicaLocked(h, c, s.id)
		return oplog.Ticket{}, false
	}
	v := r.GetVersion()
	switch {
	case v < c.version:
		// Stale: missed a version bump while down (GFS 4.5). Excluded at
		// once; deleted when a good copy exists.
		c.removeReplica(s.id)
		if len(c.replicas) > 0 {
			m.queueDeleteLocked(s.id, h)
		}
		m.needCheck[h] = struct{}{}
		return oplog.Ticket{}, false
	case v > c.version:
		// The master failed after bumping the version on this replica but
		// before logging it: adopt the higher version; holders of the old
		// one are stale now.
		t, err := m.applyLocked(newRec(opVersion).u(h).u(v).b)
		if err != nil {
			m.log.Error("adopt reported version", "chunk", h, "version", v, "err", err)
			return oplog.Ticket{}, false
		}
		m.log.Warn("adopted higher reported version", "chunk", h, "version", v, "server", s.addr)
		for _, old := range append([]serverID(nil), c.replicas...) {
			if old != s.id {
				c.removeReplica(old)
				m.queueDeleteLocked(old, h)
			}
		}
		if !c.hasReplica(s.id) {
			c.replicas = append(c.replicas, s.id)
		}
		c.length = r.GetLength()
		m.needCheck[h] = struct{}{}
		return t, true
	}
	if !c.hasReplica(s.id) && m.isSuspectLocked(h, c, s.id) {
		if len(c.replicas) > 0 && m.betterHolderLocked(h, c, s.id) {
			c.length = max(c.length, r.GetLength())
			return oplog.Ticket{}, false
		}
		if len(c.replicas) > 0 {
			// Dropped while the chunk may have been mutating at this
			// version: never re-admitted at it (docs/faults.md B1, B3).
			// A copy not worth keeping is (again) told to delete.
			if !m.isHolderLocked(h, s.id) {
				m.queueDeleteLocked(s.id, h)
			}
			m.needCheck[h] = struct{}{}
			return oplog.Ticket{}, false
		}
		// The only copy left: better a possibly incomplete copy than none.
		m.log.Warn("suspect replica re-admitted as the last copy", "chunk", h, "server", s.addr)
		m.standInLocked(h, c, s.id)
	}
	if !c.hasReplica(s.id) {
		c.replicas = append(c.replicas, s.id)
	}
	c.length = max(c.length, r.GetLength())
	if len(c.replicas) != int(c.repl) {
		m.needCheck[h] = struct{}{}
	}
	return oplog.Ticket{}, false
}

// queueDeleteLocked asks server id to delete chunk h in its next heartbeat reply.
func (m *Master) queueDeleteLocked(id serverID, h uint64) {
	s := m.servers[id]
	if s.pendingDelete == nil {
		s.pendingDelete = make(map[uint64]struct{})
	}
	s.pendingDelete[h] = struct{}{}
}

// forgetServerLocked removes s from every chunk's replica list (it died,
// restarted, or sent a full report that replaces what it held). Its leases
// stay recorded until they expire: a new primary still waits them out.
// silentSince is when the master last heard from s (zero for a full report
// of a live server): a chunk leased at its current version at any time
// after it may have been mutated without s, so s's copy becomes suspect.
func (m *Master) forgetServerLocked(s *server, silentSince time.Time) {
	for h, c := range m.st.chunks {
		if c.removeReplica(s.id) && c.flags&chunkTrashed == 0 {
			m.needCheck[h] = struct{}{}
			if silentSince.IsZero() {
				continue
			}
			if l := m.leases[h]; m.granting[h] != nil || (l != nil && l.version == c.version && l.expiry.After(silentSince)) {
				// It may have missed mutations at this version; its copy
				// is kept in case it becomes the best one left.
				m.markSuspectLocked(h, c, s.id, true)
			}
		}
	}
	for _, l := range m.leases {
		if l.primary == s.id {
			l.noRegrant = true
		}
	}
	for h, j := range m.copies {
		if j.target == s.id || j.source == s.id {
			m.endCopyLocked(h, j)
		}
	}
	s.pendingCopy = nil
	clear(s.pendingDelete)
}

func (m *Master) endCopyLocked(h uint64, j *copyJob) {
	m.servers[j.target].copiesIn--
	m.servers[j.source].copiesOut--
	delete(m.copies, h)
}
