package master

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/master/oplog"
)

const (
	// lookupMax caps the chunks one Lookup returns or allocates.
	lookupMax = 1024
	// handleBlock is how many handles one durable reservation covers.
	handleBlock = 4096
)

var (
	codeNoSpace    = controlpb.ErrorCode_ERROR_CODE_NO_SPACE
	codeNoLive     = controlpb.ErrorCode_ERROR_CODE_NO_LIVE_REPLICA
	codeTryAgain   = controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN
	codeUnknownCh  = controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK
	codeUnknownSrv = controlpb.ErrorCode_ERROR_CODE_UNKNOWN_SERVER
	codeStale      = controlpb.ErrorCode_ERROR_CODE_STALE_VERSION
)

// Lookup returns chunk locations of a file; see the .proto for for_write and
// allocate.
func (m *Master) Lookup(ctx context.Context, req *controlpb.LookupRequest) (*controlpb.LookupResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	first, count := req.GetFirstIndex(), req.GetCount()
	if first < 0 || count < 0 {
		return nil, errCode(codeBadArg, "lookup %s: negative first_index %d or count %d", p, first, count)
	}
	if count == 0 {
		count = 1
	}
	count = min(count, lookupMax)
	end := first + count
	if req.GetAllocate() {
		defer m.locks.lock(writePath(p))()
	} else {
		defer m.locks.lock(readPath(p))()
	}
	m.mu.RLock()
	n := m.st.nodes[p]
	if n == nil {
		m.mu.RUnlock()
		return nil, errCode(codeNotFound, "%s does not exist", p)
	}
	if n.dir {
		m.mu.RUnlock()
		return nil, errCode(codeIsDir, "%s is a directory", p)
	}
	have := int64(len(n.chunks))
	m.mu.RUnlock()
	if req.GetAllocate() && end > have {
		if end-have > lookupMax {
			return nil, errCode(codeBadArg, "lookup %s: allocating chunks %d..%d exceeds %d per call", p, have, end-1, lookupMax)
		}
		for idx := have; idx < end; idx++ {
			if err := m.allocateChunk(ctx, p, idx); err != nil {
				return nil, err
			}
		}
	}
	m.mu.RLock()
	n = m.st.nodes[p]
	var handles []uint64
	if first < int64(len(n.chunks)) {
		handles = append(handles, n.chunks[first:min(end, int64(len(n.chunks)))]...)
	}
	m.mu.RUnlock()
	if req.GetForWrite() {
		for _, h := range handles {
			if err := m.ensureLease(ctx, h); err != nil {
				return nil, err
			}
		}
	}
	resp := &controlpb.LookupResponse{ChunkSize: m.opts.ChunkSize}
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := m.clock.Now()
	resp.FileChunks = int64(len(m.st.nodes[p].chunks))
	// Least privilege: plain lookups read; for_write lookups also mutate.
	ops := capability.OpRead
	if req.GetForWrite() {
		ops |= capability.OpWrite | capability.OpAppend
	}
	for i, h := range handles {
		c := m.st.chunks[h]
		if c == nil {
			continue
		}
		loc := m.locationLocked(first+int64(i), h, c, now)
		var err error
		if loc.Capability, err = m.keys.Issue(nil, h, ops, 0); err != nil {
			return nil, status.Errorf(codes.Internal, "lookup %s: capability: %v", p, err)
		}
		resp.Chunks = append(resp.Chunks, loc)
	}
	return resp, nil
}

// locationLocked describes a chunk: its live up-to-date replicas and the
// primary if the master knows a confirmed, unexpired lease.
func (m *Master) locationLocked(idx int64, h uint64, c *chunk, now time.Time) *controlpb.ChunkLocation {
	loc := &controlpb.ChunkLocation{Index: idx, Handle: h, Version: c.version, Length: c.length}
	for _, r := range c.replicas {
		if s := m.servers[r]; s.alive {
			loc.Replicas = append(loc.Replicas, s.addr)
		}
	}
	if l := m.leases[h]; l != nil && l.confirmed && !l.noRegrant && l.version == c.version && l.expiry.After(now) && m.usablePrimaryLocked(c, l.primary) {
		loc.Primary = m.servers[l.primary].addr
		loc.LeaseExpiryUnixMs = l.expiry.UnixMilli()
	}
	return loc
}

func (m *Master) usablePrimaryLocked(c *chunk, id serverID) bool {
	return m.servers[id].alive && c.hasReplica(id)
}

// takeHandleLocked hands out the next chunk handle. Handles come from a
// counter whose ceiling is made durable (a reservation record) before any
// handle below it is used, so a handle is never reused after a crash.
func (m *Master) takeHandleLocked() (uint64, oplog.Ticket, error) {
	if m.nextHandle >= m.st.ceiling {
		t, err := m.applyLocked(newRec(opReserve).u(m.st.ceiling + handleBlock).b)
		if err != nil {
			return 0, oplog.Ticket{}, err
		}
		m.reserveTicket = t
	}
	h := m.nextHandle
	m.nextHandle++
	return h, m.reserveTicket, nil
}

// allocateChunk creates chunk idx of file p on distinct chunkservers and
// records it. The caller holds p's write lock.
func (m *Master) allocateChunk(ctx context.Context, p string, idx int64) error {
	m.mu.Lock()
	n := m.st.nodes[p]
	h, reserve, err := m.takeHandleLocked()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	targets := m.placeLocked(int(n.repl), nil)
	if len(targets) == 0 {
		m.mu.Unlock()
		return errCode(codeNoSpace, "allocate chunk %d of %s: no live chunkserver with space", idx, p)
	}
	addrs := make([]string, len(targets))
	for i, id := range targets {
		addrs[i] = m.servers[id].addr
		m.servers[id].recentAllocs++
	}
	m.allocating[h] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.allocating, h)
		m.mu.Unlock()
	}()
	if err := m.waitDurable(reserve); err != nil {
		return err
	}
	oks := m.callAll(ctx, addrs, func(ctx context.Context, cs controlpb.ChunkserverClient) error {
		_, err := cs.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1})
		return err
	})
	m.mu.Lock()
	var created []serverID
	for i, id := range targets {
		if oks[i] == nil && m.servers[id].alive {
			created = append(created, id)
		} else if oks[i] != nil {
			m.log.Warn("create chunk failed", "chunk", h, "server", addrs[i], "err", oks[i])
		}
	}
	if len(created) == 0 {
		m.mu.Unlock()
		return errCode(codeNoSpace, "allocate chunk %d of %s: no chunkserver could create it (%v)", idx, p, oks[0])
	}
	t, err := m.applyLocked(newRec(opAddChunk).s(p).u(uint64(idx)).u(h).u(1).b)
	if err == nil {
		c := m.st.chunks[h]
		c.replicas = created
		if len(created) < int(c.repl) {
			m.needCheck[h] = struct{}{}
		}
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitDurable(t)
}

// callAll runs fn against every address in parallel, each bounded by
// RPCTimeout, and returns the errors by index.
func (m *Master) callAll(ctx context.Context, addrs []string, fn func(context.Context, controlpb.ChunkserverClient) error) []error {
	return m.callAllIdx(ctx, addrs, func(ctx context.Context, _ int, cs controlpb.ChunkserverClient) error { return fn(ctx, cs) })
}

// callAllIdx is callAll passing each call its index.
func (m *Master) callAllIdx(ctx context.Context, addrs []string, fn func(context.Context, int, controlpb.ChunkserverClient) error) []error {
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs, err := m.chunkserver(a)
			if err != nil {
				errs[i] = err
				return
			}
			rctx, cancel := m.rpcContext(ctx)
			defer cancel()
			errs[i] = fn(rctx, i, cs)
		}()
	}
	wg.Wait()
	return errs
}

// placeLocked picks up to n distinct live chunkservers for new replicas,
// skipping excluded ones: most free space first (counting chunks placed
// since their last heartbeat), distinct racks first when racks are known.
func (m *Master) placeLocked(n int, exclude func(serverID) bool) []serverID {
	type cand struct {
		id   serverID
		free int64
	}
	var cs []cand
	for _, s := range m.servers {
		if !s.alive || (exclude != nil && exclude(s.id)) {
			continue
		}
		free := s.free - int64(s.recentAllocs)*m.opts.ChunkSize
		if s.capacity > 0 && free < m.opts.ChunkSize {
			continue
		}
		cs = append(cs, cand{s.id, free})
	}
	rand.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].free > cs[j].free })
	var out []serverID
	used := map[string]bool{}
	taken := map[serverID]bool{}
	for pass := 0; pass < 2 && len(out) < n; pass++ {
		for _, c := range cs {
			if len(out) == n {
				break
			}
			rack := m.servers[c.id].rack
			if taken[c.id] || (pass == 0 && rack != "" && used[rack]) {
				continue
			}
			out = append(out, c.id)
			taken[c.id] = true
			used[rack] = true
		}
	}
	return out
}

// ensureLease makes sure chunk h has a primary holding a lease (GFS 3.1).
// At most one primary exists at any time: a lease to a different server is
// granted only once every earlier lease has surely expired by the master's
// conservative clock, and never within LeaseTTL of the master's start on a
// chunk that existed before it (leases of the previous incarnation are
// unknown).
func (m *Master) ensureLease(ctx context.Context, h uint64) error {
	for {
		m.mu.Lock()
		c := m.st.chunks[h]
		if c == nil || c.flags&chunkTrashed != 0 {
			m.mu.Unlock()
			return errCode(codeUnknownCh, "chunk %x is not part of a file", h)
		}
		if ch := m.granting[h]; ch != nil {
			m.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		now := m.clock.Now()
		if h < m.graceCeiling && now.Before(m.graceUntil) {
			m.mu.Unlock()
			return errCode(codeTryAgain, "chunk %x: master started recently; leases granted before may be valid until %s", h, m.graceUntil.Format(time.RFC3339Nano))
		}
		l := m.leases[h]
		regrant := serverID(-1)
		if l != nil && l.expiry.After(now) {
			samePrimaryOK := l.version == c.version && !l.noRegrant && m.usablePrimaryLocked(c, l.primary)
			switch {
			case samePrimaryOK && l.confirmed:
				// Valid: the primary extends it through heartbeats while
				// it mutates (no refresh call here that a cut-off primary
				// could stall).
				m.mu.Unlock()
				return nil
			case samePrimaryOK:
				// Confirm a grant whose outcome was unknown: granting to
				// the same primary again never makes two primaries.
				regrant = l.primary
			default:
				m.mu.Unlock()
				return errCode(codeTryAgain, "chunk %x: lease of %s may be valid until %s", h, m.servers[l.primary].addr, l.expiry.Format(time.RFC3339Nano))
			}
		}
		ch := make(chan struct{})
		m.granting[h] = ch
		if j := m.copies[h]; j != nil {
			// A copy in flight reads the chunk as it was: if this grant
			// reuses the version, the copy would be admitted without the
			// new lease's mutations (faults B13).
			j.overtaken = true
		}
		var err error
		if regrant >= 0 {
			addr, ver := m.servers[regrant].addr, c.version
			m.mu.Unlock()
			err = m.grant(ctx, h, regrant, addr, ver)
		} else {
			var live []serverID
			for _, r := range c.replicas {
				if m.servers[r].alive {
					live = append(live, r)
				}
			}
			oldV := c.version
			m.mu.Unlock()
			if len(live) == 0 {
				err = errCode(codeNoLive, "chunk %x: no live up-to-date replica", h)
			} else {
				err = m.newLease(ctx, h, oldV, live)
			}
		}
		m.mu.Lock()
		delete(m.granting, h)
		close(ch)
		m.takeDeferredLocked(h)
		m.mu.Unlock()
		return err
	}
}

// newLease bumps the version on the up-to-date replicas, makes it durable,
// then grants the lease: GFS 3.1 / 4.5 order, so a replica that misses the
// bump is recognisably stale and no lease is announced for a version the
// master could forget.
func (m *Master) newLease(ctx context.Context, h, oldV uint64, live []serverID) error {
	m.mu.RLock()
	addrs := make([]string, len(live))
	for i, id := range live {
		addrs[i] = m.servers[id].addr
	}
	m.mu.RUnlock()
	// Every new lease bumps the version, also a new chunk's first one: a
	// replica that missed it (down, unreachable) is recognisably stale when
	// it comes back, whatever it missed.
	newV := oldV + 1
	lengths := make([]int64, len(live))
	errs := m.callAllIdx(ctx, addrs, func(ctx context.Context, i int, cs controlpb.ChunkserverClient) error {
		resp, err := cs.SetVersion(ctx, &controlpb.SetVersionRequest{Handle: h, ExpectedVersion: oldV, Version: newV})
		if err == nil {
			lengths[i] = resp.GetLength()
		}
		return err
	})
	m.mu.Lock()
	c := m.st.chunks[h]
	if c == nil || c.flags&chunkTrashed != 0 {
		m.mu.Unlock()
		return errCode(codeUnknownCh, "chunk %x was deleted", h)
	}
	var ok, failed []serverID
	var length int64
	for i, id := range live {
		if errs[i] == nil {
			ok = append(ok, id)
			length = max(length, lengths[i])
			continue
		}
		m.log.Warn("set version failed", "chunk", h, "server", addrs[i], "err", errs[i])
		failed = append(failed, id)
	}
	if len(ok) == 0 {
		// Nobody took it: keep every replica (a transient failure must
		// not cost the data); the caller retries.
		m.mu.Unlock()
		return errCode(codeNoLive, "chunk %x: no replica accepted version %d (%v)", h, newV, errs[0])
	}
	t, err := m.applyLocked(newRec(opVersion).u(h).u(newV).b)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	for _, id := range failed {
		// It missed the bump, or may have taken it without answering: out
		// of the lease either way, and never re-admitted at the new
		// version (it would miss the lease's mutations). Its copy is kept
		// in case it becomes the best one left (GFS 4.5).
		c.removeReplica(id)
		m.markSuspectLocked(h, c, id, true)
		m.needCheck[h] = struct{}{}
	}
	c.length = max(c.length, length)
	m.mu.Unlock()
	if err := m.waitDurable(t); err != nil {
		return err
	}
	// Primary: the least loaded up-to-date replica.
	m.mu.RLock()
	primary := ok[0]
	for _, id := range ok[1:] {
		if m.servers[id].load < m.servers[primary].load {
			primary = id
		}
	}
	addr := m.servers[primary].addr
	m.mu.RUnlock()
	return m.grant(ctx, h, primary, addr, newV)
}

// grant sends GrantLease and records the lease. The master counts the lease
// from when it received the answer (the primary counts from when it got the
// request, minus a margin), so the master's expiry is never the earlier one.
// When the outcome is unknown the server may hold the lease: the master
// records it as unconfirmed until now+LeaseTTL and grants nobody else.
func (m *Master) grant(ctx context.Context, h uint64, id serverID, addr string, ver uint64) error {
	cs, err := m.chunkserver(addr)
	if err == nil {
		rctx, cancel := m.rpcContext(ctx)
		_, err = cs.GrantLease(rctx, &controlpb.GrantLeaseRequest{Handle: h, Version: ver, LeaseMs: m.opts.LeaseTTL.Milliseconds()})
		cancel()
	}
	now := m.clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if code := control.Code(err); code != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		// The server answered and refused on purpose: it holds no new lease.
		if code == codeStale || code == codeUnknownCh {
			if c := m.st.chunks[h]; c != nil && c.hasReplica(id) {
				m.log.Warn("primary candidate refused the lease; replica dropped", "chunk", h, "server", addr, "err", err)
				m.dropReplicaLocked(h, c, id)
			}
		}
		return errCode(codeTryAgain, "grant lease of chunk %x to %s: %v", h, addr, err)
	}
	if err != nil {
		l := m.leases[h]
		if l == nil || l.primary != id || l.version != ver {
			l = &lease{primary: id, version: ver}
			m.leases[h] = l
		}
		l.confirmed = false
		if exp := now.Add(m.opts.LeaseTTL); exp.After(l.expiry) {
			l.expiry = exp
		}
		return errCode(codeTryAgain, "grant lease of chunk %x to %s: %v", h, addr, err)
	}
	m.leases[h] = &lease{primary: id, version: ver, expiry: now.Add(m.opts.LeaseTTL), confirmed: true}
	return nil
}

// ReportBadReplica drops a replica that failed verification; the master
// re-replicates from a good copy and deletes the bad one. The last replica
// is kept (a partly bad copy beats none).
func (m *Master) ReportBadReplica(ctx context.Context, req *controlpb.ReportBadReplicaRequest) (*controlpb.ReportBadReplicaResponse, error) {
	h, addr := req.GetHandle(), req.GetReplica()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.st.chunks[h]
	if c == nil {
		return nil, errCode(codeUnknownCh, "report bad replica: unknown chunk %x", h)
	}
	id, ok := m.byAddr[addr]
	if !ok {
		return nil, errCode(codeUnknownSrv, "report bad replica: unknown chunkserver %q", addr)
	}
	if !c.hasReplica(id) {
		return &controlpb.ReportBadReplicaResponse{}, nil
	}
	if len(c.replicas) == 1 {
		m.log.Warn("bad replica reported, but it is the last one; kept", "chunk", h, "server", addr, "reason", req.GetReason())
		return &controlpb.ReportBadReplicaResponse{}, nil
	}
	m.log.Warn("bad replica reported", "chunk", h, "server", addr, "reason", req.GetReason())
	m.dropReplicaLocked(h, c, id)
	return &controlpb.ReportBadReplicaResponse{}, nil
}
