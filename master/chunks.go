package master

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
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
			if slices.Contains(m.keptBad[h], r) {
				loc.Corrupt = append(loc.Corrupt, s.addr)
			}
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

// allocateRounds bounds how often allocateChunk places replacements for
// servers that failed to create a chunk.
const allocateRounds = 3

// allocateChunk creates chunk idx of file p on distinct chunkservers and
// records it. A server that fails to create it (died a moment ago, disk
// full) is replaced by another where one is left, so a new chunk starts at
// its target whenever enough servers are alive. The caller holds p's write
// lock.
func (m *Master) allocateChunk(ctx context.Context, p string, idx int64) error {
	m.mu.Lock()
	n := m.st.nodes[p]
	want := int(n.repl)
	h, reserve, err := m.takeHandleLocked()
	if err != nil {
		m.mu.Unlock()
		return err
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
	var created []serverID
	tried := map[serverID]bool{}
	var firstErr error
	for round := 0; round < allocateRounds && len(created) < want; round++ {
		m.mu.Lock()
		targets := m.placeLocked(want-len(created), func(id serverID) bool { return tried[id] })
		addrs := make([]string, len(targets))
		for i, id := range targets {
			addrs[i] = m.servers[id].addr
			m.servers[id].recentAllocs++
			tried[id] = true
		}
		m.mu.Unlock()
		if len(targets) == 0 {
			break
		}
		errs := m.callAll(ctx, addrs, func(ctx context.Context, cs controlpb.ChunkserverClient) error {
			_, err := cs.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1})
			return err
		})
		m.mu.Lock()
		for i, id := range targets {
			if errs[i] != nil {
				m.log.Warn("create chunk failed", "chunk", h, "server", addrs[i], "err", errs[i])
				firstErr = cmp.Or(firstErr, errs[i])
				continue
			}
			created = append(created, id)
		}
		m.mu.Unlock()
	}
	if len(created) == 0 {
		if firstErr == nil {
			return errCode(codeNoSpace, "allocate chunk %d of %s: no live chunkserver with space", idx, p)
		}
		return errCode(codeNoSpace, "allocate chunk %d of %s: no chunkserver could create it (%v)", idx, p, firstErr)
	}
	m.mu.Lock()
	t, err := m.applyLocked(newRec(opAddChunk).s(p).u(uint64(idx)).u(h).u(1).b)
	if err == nil {
		c := m.st.chunks[h]
		c.replicas = created
		c.flags |= chunkMembersKnown
		m.needCheck[h] = struct{}{}
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
// unknown). When a member the lease names is lost, the primary can mutate
// no more (it needs all of them): the version is bumped on the others and
// the lease granted to the same primary again, with them.
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
		regrant, keep := serverID(-1), serverID(-1)
		if l != nil && l.expiry.After(now) {
			samePrimaryOK := l.version == c.version && !l.noRegrant && m.usablePrimaryLocked(c, l.primary)
			switch {
			case samePrimaryOK && !m.membersIntactLocked(c, l):
				// A member is gone: bump on the rest, same primary.
				keep = l.primary
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
			// A copy in flight reads the chunk as it was: it joins no
			// more (faults B13).
			j.overtaken = true
		}
		var err error
		if regrant >= 0 {
			members, ver := l.members, c.version
			m.mu.Unlock()
			err = m.grant(ctx, h, regrant, members, ver)
		} else {
			var live []serverID
			for _, r := range c.replicas {
				if m.servers[r].alive {
					live = append(live, r)
				}
			}
			m.mu.Unlock()
			if len(live) == 0 {
				err = errCode(codeNoLive, "chunk %x: no live up-to-date replica", h)
			} else {
				err = m.newLease(ctx, h, live, keep)
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

// membersIntactLocked reports whether every member lease l was granted
// with is still a live member of c.
func (m *Master) membersIntactLocked(c *chunk, l *lease) bool {
	for _, id := range l.members {
		if !m.servers[id].alive || !c.hasReplica(id) {
			return false
		}
	}
	return true
}

// bumpAttempts bounds the version bumps of one newLease: a bump some
// member answered ambiguously (timeout, broken connection) is followed by
// another among those that confirmed, so that no server which may hold the
// leased version is left out of the lease.
const bumpAttempts = 3

// newLease bumps the version on the live members, makes it durable, then
// grants the lease (GFS 3.1 / 4.5 order): a member that misses the bump is
// recognisably stale, and no lease is announced for a version the master
// could forget. The members at the new version are exactly those that
// confirmed it. A bump that some member answered ambiguously (it may or
// may not hold the new version) is repeated among the confirmed ones before
// any lease is granted, so the lease's version is held by its members only.
// keep >= 0 names the primary of a lease that is still valid: the lease
// goes to it again or to nobody.
func (m *Master) newLease(ctx context.Context, h uint64, live []serverID, keep serverID) error {
	set := live
	for attempt := 1; ; attempt++ {
		m.mu.Lock()
		c := m.st.chunks[h]
		if c == nil || c.flags&chunkTrashed != 0 {
			m.mu.Unlock()
			return errCode(codeUnknownCh, "chunk %x was deleted", h)
		}
		// Never reuse the number of a bump nobody confirmed: a member may
		// hold it, and must not pass for a member of a later lease at it.
		oldV := c.version
		newV := max(oldV, m.floor[h]) + 1
		addrs := make([]string, len(set))
		for i, id := range set {
			addrs[i] = m.servers[id].addr
		}
		m.mu.Unlock()
		lengths := make([]int64, len(set))
		errs := m.callAllIdx(ctx, addrs, func(ctx context.Context, i int, cs controlpb.ChunkserverClient) error {
			resp, err := cs.SetVersion(ctx, &controlpb.SetVersionRequest{Handle: h, ExpectedVersion: oldV, Version: newV})
			if err == nil {
				lengths[i] = resp.GetLength()
			}
			return err
		})
		var ok []serverID
		var length int64
		unknown := 0
		for i, id := range set {
			if errs[i] == nil {
				ok = append(ok, id)
				length = max(length, lengths[i])
				continue
			}
			m.log.Warn("set version failed", "chunk", h, "server", addrs[i], "version", newV, "err", errs[i])
			if control.Code(errs[i]) == controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
				unknown++ // no answer: it may have taken the new version
			}
		}
		m.mu.Lock()
		c = m.st.chunks[h]
		if c == nil || c.flags&chunkTrashed != 0 {
			m.mu.Unlock()
			return errCode(codeUnknownCh, "chunk %x was deleted", h)
		}
		if len(ok) == 0 {
			if unknown > 0 {
				m.floor[h] = newV
			}
			// Nobody confirmed: the members stay as they were (a transient
			// failure must not cost the data); the caller retries.
			m.mu.Unlock()
			return errCode(codeNoLive, "chunk %x: no replica accepted version %d (%v)", h, newV, errs[0])
		}
		t, err := m.applyLocked(newRec(opVersion).u(h).u(newV).b)
		if err != nil {
			m.mu.Unlock()
			return err
		}
		delete(m.floor, h)
		// The members at newV: those that confirmed it (and were not
		// dropped meanwhile, say as bad). The rest missed it or may have
		// taken it without answering; either way they are no members
		// (stale, or refused at newV while it is current).
		for _, r := range slices.Clone(c.replicas) {
			if !slices.Contains(ok, r) {
				c.removeReplica(r)
			}
		}
		members := slices.Clone(c.replicas)
		c.flags |= chunkMembersKnown
		c.length = max(c.length, length)
		m.needCheck[h] = struct{}{}
		m.mu.Unlock()
		if err := m.waitDurable(t); err != nil {
			return err
		}
		if len(members) == 0 {
			return errCode(codeNoLive, "chunk %x: every replica that took version %d was dropped meanwhile", h, newV)
		}
		if keep >= 0 && !slices.Contains(members, keep) {
			// The valid lease's primary did not confirm: it keeps its lease
			// until expiry (it can no longer complete a round: its other
			// members moved on), and nobody else gets one before.
			return errCode(codeTryAgain, "chunk %x: primary %s did not take version %d", h, addrs[slices.Index(set, keep)], newV)
		}
		if unknown == 0 {
			members = m.replaceLost(ctx, h, members, live, newV)
			return m.grantNew(ctx, h, members, keep, newV)
		}
		if attempt == bumpAttempts {
			return errCode(codeTryAgain, "chunk %x: version %d not confirmed by every member (%d unanswered)", h, newV, unknown)
		}
		set = members
	}
}

// replaceLost copies chunk h, just bumped to version v and not leased yet
// (so it cannot change), to new servers until its live members reach the
// target, and returns the members with those copies. It is how a chunk that
// lost a replica while being mutated gets it back: re-replication skips
// leased chunks, and a chunk under steady writes or appends stays leased
// (HDFS replaces a datanode in a write pipeline the same way). Writers wait
// for the copies (one chunk each); a copy that fails leaves the chunk to
// ordinary re-replication. Servers in tried (those asked to take the bump)
// are not copied to: one that failed it is likely failing.
func (m *Master) replaceLost(ctx context.Context, h uint64, members, tried []serverID, v uint64) []serverID {
	for range maxReplication {
		m.mu.Lock()
		c := m.st.chunks[h]
		if c == nil || c.version != v || m.liveReplicasLocked(c) >= int(c.repl) {
			m.mu.Unlock()
			return members
		}
		busy := serverID(-1)
		if j := m.copies[h]; j != nil {
			// A copy scheduled before the bump is worthless now.
			busy = j.target
			m.endCopyLocked(h, j)
		}
		src := serverID(-1)
		for _, r := range members {
			// Never from a copy known bad (kept as the last one): that
			// would pass it off as good.
			if s := m.servers[r]; s.alive && !slices.Contains(m.keptBad[h], r) && (src < 0 || s.copiesOut < m.servers[src].copiesOut) {
				src = r
			}
		}
		targets := m.placeLocked(1, func(id serverID) bool {
			return c.hasReplica(id) || id == busy || slices.Contains(tried, id) || m.servers[id].copiesIn >= m.opts.MaxCopiesPerServer
		})
		if src < 0 || len(targets) == 0 {
			m.mu.Unlock()
			return members
		}
		dst := targets[0]
		cmd, job, err := m.startCopyLocked(h, v, src, dst, m.clock.Now(), false)
		if err != nil {
			m.mu.Unlock()
			m.log.Error("replacement copy: capability", "chunk", h, "err", err)
			return members
		}
		job.sent = true // CopyChunk is called right away
		dstAddr, srcAddr := m.servers[dst].addr, m.servers[src].addr
		m.mu.Unlock()

		var resp *controlpb.CopyChunkResponse
		cs, err := m.chunkserver(dstAddr)
		if err == nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.opts.CopyTimeout)
			resp, err = cs.CopyChunk(cctx, cmd)
			cancel()
		}
		m.mu.Lock()
		if m.copies[h] == job {
			m.endCopyLocked(h, job)
		}
		c = m.st.chunks[h]
		ok := err == nil && resp.GetVersion() == v && c != nil && c.version == v && m.servers[dst].alive
		if ok && !c.hasReplica(dst) {
			c.replicas = append(c.replicas, dst)
			c.length = max(c.length, resp.GetLength())
			members = append(members, dst)
		}
		m.mu.Unlock()
		if !ok {
			m.log.Warn("replacement copy failed; the chunk waits for re-replication", "chunk", h, "version", v, "from", srcAddr, "to", dstAddr, "err", err)
			return members
		}
		m.log.Info("replica replaced before the lease", "chunk", h, "version", v, "from", srcAddr, "to", dstAddr, "bytes", resp.GetLength())
	}
	return members
}

// grantNew grants the lease at version v to keep, or else to the least
// loaded of members.
func (m *Master) grantNew(ctx context.Context, h uint64, members []serverID, keep serverID, v uint64) error {
	m.mu.RLock()
	primary := keep
	if primary < 0 {
		primary = members[0]
		for _, id := range members[1:] {
			if m.servers[id].load < m.servers[primary].load {
				primary = id
			}
		}
	}
	m.mu.RUnlock()
	return m.grant(ctx, h, primary, members, v)
}

// grant sends GrantLease (naming the other members) and records the lease.
// The master counts the lease from when it received the answer (the
// primary counts from when it got the request, minus a margin), so the
// master's expiry is never the earlier one. When the outcome is unknown
// the server may hold the lease: the master records it as unconfirmed
// until now+LeaseTTL and grants nobody else.
func (m *Master) grant(ctx context.Context, h uint64, id serverID, members []serverID, ver uint64) error {
	m.mu.RLock()
	addr := m.servers[id].addr
	var secondaries []string
	for _, r := range members {
		if r != id {
			secondaries = append(secondaries, m.servers[r].addr)
		}
	}
	m.mu.RUnlock()
	// Only the primary may send apply rounds (a client's write capability
	// does not allow them).
	applyCap, err := m.keys.Issue(nil, h, capability.OpApply, 0)
	if err != nil {
		return status.Errorf(codes.Internal, "grant lease of chunk %x: capability: %v", h, err)
	}
	cs, err := m.chunkserver(addr)
	if err == nil {
		rctx, cancel := m.rpcContext(ctx)
		_, err = cs.GrantLease(rctx, &controlpb.GrantLeaseRequest{Handle: h, Version: ver, LeaseMs: m.opts.LeaseTTL.Milliseconds(), Secondaries: secondaries, ApplyCapability: applyCap})
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
			l = &lease{primary: id, version: ver, members: members}
			m.leases[h] = l
		}
		l.confirmed = false
		if exp := now.Add(m.opts.LeaseTTL); exp.After(l.expiry) {
			l.expiry = exp
		}
		return errCode(codeTryAgain, "grant lease of chunk %x to %s: %v", h, addr, err)
	}
	m.leases[h] = &lease{primary: id, version: ver, expiry: now.Add(m.opts.LeaseTTL), confirmed: true, members: members}
	return nil
}

// LocateChunk tells a chunkserver where one chunk lives, by handle: its
// version, live replicas and primary as a read lookup lists them, with no
// capability (the replica check compares block checksums over the control
// channel, not data). A chunk of a deleted file is unknown.
func (m *Master) LocateChunk(ctx context.Context, req *controlpb.LocateChunkRequest) (*controlpb.LocateChunkResponse, error) {
	h := req.GetHandle()
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := m.st.chunks[h]
	if c == nil || c.flags&chunkTrashed != 0 {
		return nil, errCode(codeUnknownCh, "locate chunk %x: unknown chunk", h)
	}
	return &controlpb.LocateChunkResponse{Location: m.locationLocked(0, h, c, m.clock.Now())}, nil
}

// ReportBadReplica drops a replica that failed verification; the master
// re-replicates from a good copy and deletes the bad one. The last live
// replica is kept (a partly bad copy beats none) but listed as corrupt
// until another copy is live (settleKeptBadLocked), so fsck does not count
// it a good copy and readers try it last.
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
	if v := req.GetVersion(); v != 0 && v != c.version {
		m.log.Info("bad replica reported at another version; ignored", "chunk", h, "server", addr, "reported_version", v, "version", c.version, "reason", req.GetReason())
		return &controlpb.ReportBadReplicaResponse{}, nil
	}
	if m.servers[id].alive && m.liveReplicasLocked(c) == 1 {
		m.log.Warn("bad replica reported, but it is the last one; kept, listed as corrupt", "chunk", h, "server", addr, "reason", req.GetReason())
		if !slices.Contains(m.keptBad[h], id) {
			m.keptBad[h] = append(m.keptBad[h], id)
		}
		return &controlpb.ReportBadReplicaResponse{}, nil
	}
	m.log.Warn("bad replica reported", "chunk", h, "server", addr, "reason", req.GetReason())
	m.dropReplicaLocked(h, c, id)
	return &controlpb.ReportBadReplicaResponse{}, nil
}

// settleKeptBadLocked revisits the replicas kept as a chunk's last live
// copy although reported bad: a mark goes once the replica is no member
// any more (dropped, stale, deleted, the chunk reclaimed); once another
// member is live again (a dead member came back) the bad ones are dropped
// for real, so the good copy is copied over them.
func (m *Master) settleKeptBadLocked() {
	for h, ids := range m.keptBad {
		c := m.st.chunks[h]
		if c == nil || c.flags&chunkTrashed != 0 {
			delete(m.keptBad, h)
			continue
		}
		ids = slices.DeleteFunc(ids, func(id serverID) bool { return !c.hasReplica(id) })
		good := 0
		for _, r := range c.replicas {
			if m.servers[r].alive && !slices.Contains(ids, r) {
				good++
			}
		}
		if good > 0 {
			for _, id := range ids {
				m.log.Warn("bad replica kept as the last copy dropped: another copy is live", "chunk", h, "server", m.servers[id].addr)
				m.dropReplicaLocked(h, c, id)
			}
			ids = nil
		}
		if len(ids) == 0 {
			delete(m.keptBad, h)
		} else {
			m.keptBad[h] = ids
		}
	}
}
