package master

import (
	"context"
	"net"
	"slices"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
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
	// sent: the command reached the target (a heartbeat reply carried it,
	// or CopyChunk was called). Only a removal the target reports after
	// that can be the copy failing; one reported before is of an older
	// copy the target deleted (the copy replaces it anyway).
	sent bool
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
		// A restart: it lost its leases, copies in flight and pending
		// commands; what it holds is this report.
		m.serverDownLocked(s)
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
	tickets := m.fullReportLocked(s, req.GetChunks())
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
	var tickets []oplog.Ticket
	if req.GetFullReport() {
		tickets = m.fullReportLocked(s, req.GetChanged())
	} else {
		for _, r := range req.GetChanged() {
			if t, ok := m.reportLocked(s, r); ok {
				tickets = append(tickets, t)
			}
		}
	}
	for _, h := range req.GetRemoved() {
		if c := m.st.chunks[h]; c != nil && c.removeReplica(s.id) {
			m.needCheck[h] = struct{}{}
		}
		if j := m.copies[h]; j != nil && j.target == s.id && j.sent {
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
	for _, cmd := range resp.Copy {
		if j := m.copies[cmd.GetHandle()]; j != nil && j.target == s.id {
			j.sent = true
		}
	}
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
	applyCap, err := m.keys.Issue(nil, h, capability.OpApply, 0)
	if err != nil {
		m.log.Error("lease extension: capability", "chunk", h, "err", err)
		return nil
	}
	l.expiry = now.Add(m.opts.LeaseTTL)
	l.confirmed = true
	return &controlpb.LeaseExtension{Handle: h, Version: c.version, LeaseMs: m.opts.LeaseTTL.Milliseconds(), ApplyCapability: applyCap}
}

// fullReportLocked takes a report of everything s holds: each chunk is
// reported, and s stops being a member of chunks it no longer holds. It
// returns the tickets of versions adopted from the report.
func (m *Master) fullReportLocked(s *server, reports []*controlpb.ChunkReport) []oplog.Ticket {
	var tickets []oplog.Ticket
	reported := make(map[uint64]struct{}, len(reports))
	for _, r := range reports {
		reported[r.GetHandle()] = struct{}{}
		if t, ok := m.reportLocked(s, r); ok {
			tickets = append(tickets, t)
		}
	}
	for h, c := range m.st.chunks {
		if _, ok := reported[h]; !ok && c.removeReplica(s.id) {
			m.needCheck[h] = struct{}{}
		}
	}
	return tickets
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
		// A lease change is in flight and decides the members; take the
		// report once it is done.
		m.deferred[h] = append(m.deferred[h], deferredReport{server: s.id, report: r})
		return oplog.Ticket{}, false
	}
	copied := false
	if j := m.copies[h]; j != nil && j.target == s.id {
		// A copy joins only if no lease was granted since it was scheduled
		// (it would miss that lease's mutations).
		copied = j.version == c.version && !j.overtaken
		m.endCopyLocked(h, j)
	}
	m.needCheck[h] = struct{}{}
	v := r.GetVersion()
	switch {
	case r.GetCorrupt():
		m.dropReplicaLocked(h, c, s.id)
		return oplog.Ticket{}, false
	case v < c.version && c.hasReplica(s.id):
		// A member confirmed the current version (durably: versions never
		// go back on a server), so this report was taken before the bump
		// and overtaken by it; its next report says the current version.
		return oplog.Ticket{}, false
	case v < c.version:
		// Stale: missed a version bump (GFS 4.5).
		c.removeReplica(s.id)
		if slices.Contains(m.unlisted[h], s.id) {
			// Kept while the current version is short of copies.
			m.releaseUnlistedLocked(h, c)
			return oplog.Ticket{}, false
		}
		m.discardCopyLocked(h, c, s.id)
		return oplog.Ticket{}, false
	case v > c.version:
		// A bump whose outcome the master never learned: it died before
		// logging it, or nobody answered. Only members are sent bumps, and
		// no lease was granted at v (a lease follows a logged bump), so s
		// holds every acknowledged mutation. Adopt v; holders of the old
		// version are stale now.
		t, err := m.applyLocked(newRec(opVersion).u(h).u(v).b)
		if err != nil {
			m.log.Error("adopt reported version", "chunk", h, "version", v, "err", err)
			return oplog.Ticket{}, false
		}
		if m.floor[h] <= v {
			delete(m.floor, h)
		}
		m.log.Warn("adopted higher reported version", "chunk", h, "version", v, "server", s.addr)
		// s holds the highest version the master knows of: it is never
		// deleted (not even a delete queued earlier). Holders of the old
		// version are stale (GFS 4.5) but are kept, never listed, until
		// the adopted version is back at its target: if s died before
		// anything was copied from it, they would be the best data left.
		for _, old := range slices.Clone(c.replicas) {
			c.removeReplica(old)
			if old != s.id {
				m.keepUnlistedLocked(h, old)
			}
		}
		m.unlisted[h] = slices.DeleteFunc(m.unlisted[h], func(id serverID) bool { return id == s.id })
		delete(s.pendingDelete, h)
		c.replicas = append(c.replicas, s.id)
		// Others reporting v are as complete: let them join.
		c.flags &^= chunkMembersKnown
		c.length = r.GetLength()
		return t, true
	case c.hasReplica(s.id):
	case copied || c.flags&chunkMembersKnown == 0:
		c.replicas = append(c.replicas, s.id)
	default:
		// At the current version without being confirmed at it (a bump
		// whose answer was lost, a copy overtaken by a lease, a copy
		// dropped as bad): it may lack acknowledged mutations. Never
		// listed.
		m.discardCopyLocked(h, c, s.id)
		return oplog.Ticket{}, false
	}
	c.length = max(c.length, r.GetLength())
	// A delete queued for an older copy on s (before it was copied to)
	// must not reach the member copy.
	delete(s.pendingDelete, h)
	m.unlisted[h] = slices.DeleteFunc(m.unlisted[h], func(id serverID) bool { return id == s.id })
	m.releaseUnlistedLocked(h, c)
	return oplog.Ticket{}, false
}

// keepUnlistedLocked keeps the copy of h on id, never listed, until
// releaseUnlistedLocked lets it go.
func (m *Master) keepUnlistedLocked(h uint64, id serverID) {
	if !slices.Contains(m.unlisted[h], id) {
		m.unlisted[h] = append(m.unlisted[h], id)
	}
}

// releaseUnlistedLocked deletes the copies of h kept for lack of members
// once the members are enough to do without them: as many live members as
// the chunk's target, or as there are live chunkservers when fewer. A
// member is never deleted this way.
func (m *Master) releaseUnlistedLocked(h uint64, c *chunk) {
	if len(m.unlisted[h]) == 0 {
		delete(m.unlisted, h)
		return
	}
	if m.liveReplicasLocked(c) < min(int(c.repl), m.liveServersLocked()) {
		return
	}
	for _, id := range m.unlisted[h] {
		if !c.hasReplica(id) {
			m.queueDeleteLocked(id, h)
		}
	}
	delete(m.unlisted, h)
}

// discardCopyLocked disposes of a copy of h on id that is no member: it is
// deleted when a member is alive to copy from, else kept (never listed, but
// an operator may want it) until one is.
func (m *Master) discardCopyLocked(h uint64, c *chunk, id serverID) {
	if m.liveReplicasLocked(c) > 0 {
		m.queueDeleteLocked(id, h)
		return
	}
	m.keepUnlistedLocked(h, id)
}

// queueDeleteLocked asks server id to delete chunk h in its next heartbeat reply.
func (m *Master) queueDeleteLocked(id serverID, h uint64) {
	s := m.servers[id]
	if s.pendingDelete == nil {
		s.pendingDelete = make(map[uint64]struct{})
	}
	s.pendingDelete[h] = struct{}{}
}

// serverDownLocked handles s going away (declared dead, or registering
// again after a restart): its copies in flight end, its pending commands
// are dropped, and leases it holds are never extended or granted to it
// again at their version (it may have lost their state). It stays a member
// of its chunks: if it comes back at their version it holds every mutation
// acknowledged there (primaries mutate only with all members of their
// lease); if the version moved on meanwhile it is stale.
func (m *Master) serverDownLocked(s *server) {
	for h, c := range m.st.chunks {
		if c.hasReplica(s.id) && c.flags&chunkTrashed == 0 {
			m.needCheck[h] = struct{}{}
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

// liveReplicasLocked counts c's members that are alive.
func (m *Master) liveReplicasLocked(c *chunk) int {
	n := 0
	for _, r := range c.replicas {
		if m.servers[r].alive {
			n++
		}
	}
	return n
}

// dropReplicaLocked removes id from h's members for good at this version
// (reported bad, trimmed, refused a lease): its reports of the version are
// refused from now on, and it is told to delete its copy when another
// member is alive.
func (m *Master) dropReplicaLocked(h uint64, c *chunk, id serverID) {
	c.removeReplica(id)
	c.flags |= chunkMembersKnown
	m.discardCopyLocked(h, c, id)
	m.needCheck[h] = struct{}{}
}

// deferredReport is a chunk report that arrived while a lease change of the
// chunk was in flight; it is taken once the change is done.
type deferredReport struct {
	server serverID
	report *controlpb.ChunkReport
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

func (m *Master) endCopyLocked(h uint64, j *copyJob) {
	m.servers[j.target].copiesIn--
	m.servers[j.source].copiesOut--
	delete(m.copies, h)
}
