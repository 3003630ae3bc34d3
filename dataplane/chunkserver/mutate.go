package chunkserver

import (
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// maxInlineBytes caps the data a mutation request may carry inline.
const maxInlineBytes = 1 << 20

// mutation is one write or record append waiting in a chunk's sequencer.
type mutation struct {
	op      wire.Op
	version uint64
	off     int64
	data    []byte
	inline  bool
	id      wire.PushID
	sync    bool

	// The request, to answer it, and its data's buffer, to release it.
	reqID  uint64
	buf    *store.Buffer
	pushed bool // buf came from the push buffer
	queued bool // answered by the connection's answer writer

	// Results, written by the round that ran the mutation before wake.
	status  wire.Status
	replica string
	msg     string
	resOff  int64
	wake    chan struct{} // buffered(1): finished
}

// appendAnswer appends the response frame answering m to out.
func (m *mutation) appendAnswer(out []byte) []byte {
	h := wire.Header{Op: m.op, Flags: wire.FlagResponse, RequestID: m.reqID, Status: m.status}
	if m.status != wire.StatusOK {
		return wire.AppendRequest(out, &h, nil, &wire.ErrorResponse{Replica: m.replica, Message: m.msg})
	}
	return wire.AppendRequest(out, &h, nil, &wire.MutationResponse{Offset: m.resOff})
}

// doneMutation releases a finished mutation's data.
func (s *Server) doneMutation(m *mutation) {
	if m.queued {
		s.queuedBytes.Add(-int64(len(m.data)))
	}
	if m.pushed {
		s.pushes.release(m.buf)
	} else {
		store.PutBuffer(m.buf)
	}
	m.buf, m.data = nil, nil
	s.activeMutations.Add(-1)
}

// chunkSeq orders one chunk's mutations.
type chunkSeq struct {
	mu      sync.Mutex
	pending []*mutation // guarded by mu
	running bool        // a sequencer goroutine runs rounds; guarded by mu
	serial  uint64      // primary: serial of the last round; sequencer only

	// Secondary side: the primary accepted at primaryVersion and the last
	// round serial applied from it.
	applyMu        sync.Mutex
	primary        string // guarded by applyMu
	primaryVersion uint64 // guarded by applyMu
	lastSerial     uint64 // guarded by applyMu
}

type seqTable struct {
	mu sync.Mutex
	m  map[store.Handle]*chunkSeq // guarded by mu
}

func (t *seqTable) init() { t.m = make(map[store.Handle]*chunkSeq) }

func (t *seqTable) get(h store.Handle) *chunkSeq {
	t.mu.Lock()
	q := t.m[h]
	if q == nil {
		q = &chunkSeq{}
		t.m[h] = q
	}
	t.mu.Unlock()
	return q
}

func (t *seqTable) remove(h store.Handle) {
	t.mu.Lock()
	delete(t.m, h)
	t.mu.Unlock()
}

// handleMutation answers OpWrite and OpAppend on the primary.
func (c *dataConn) handleMutation(h *wire.Header, meta []byte) error {
	req := &c.mut
	if err := req.Decode(meta); err != nil {
		return c.fail(h, wire.StatusBadRequest, "malformed %v request", h.Op)
	}
	inline := h.Flags&wire.FlagInline != 0
	switch {
	case req.Length <= 0 || req.Offset < 0:
		return c.fail(h, wire.StatusBadRequest, "%v of chunk %x: bad offset %d or length %d", h.Op, req.Handle, req.Offset, req.Length)
	case len(req.Secondaries) >= wire.MaxChain:
		return c.fail(h, wire.StatusBadRequest, "%d secondaries", len(req.Secondaries))
	case inline && int64(h.PayloadLen) != req.Length, !inline && h.PayloadLen != 0:
		return c.fail(h, wire.StatusBadRequest, "%v of chunk %x: payload of %d bytes for length %d (inline %v)", h.Op, req.Handle, h.PayloadLen, req.Length, inline)
	case inline && req.Length > maxInlineBytes:
		return c.fail(h, wire.StatusTooLarge, "inline data of %d bytes over the cap of %d: push it", req.Length, maxInlineBytes)
	case h.Op == wire.OpAppend && req.Length > c.s.chunkSize/4:
		return c.fail(h, wire.StatusTooLarge, "record of %d bytes over the cap of %d (chunk size / 4)", req.Length, c.s.chunkSize/4)
	case h.Op == wire.OpWrite && req.Offset > c.s.chunkSize-req.Length:
		return c.fail(h, wire.StatusOutOfRange, "write of %d bytes at %d beyond the chunk size %d", req.Length, req.Offset, c.s.chunkSize)
	}
	op := capability.OpWrite
	if h.Op == wire.OpAppend {
		op = capability.OpAppend
	}
	if ok, err := c.authorize(h, req.Handle, op, false); !ok {
		return err
	}
	hd := store.Handle(req.Handle)
	l, ok := c.s.leases.validLease(hd, req.Version, time.Now())
	if !ok {
		return c.fail(h, wire.StatusNotPrimary, "no valid lease on chunk %x at version %d here", req.Handle, req.Version)
	}
	if !l.sameReplicas(req.Secondaries) {
		// Every replica of the lease applies every acknowledged mutation,
		// or none is acknowledged: a chain without one of them would let
		// it miss data while still holding the current version.
		return c.fail(h, wire.StatusStaleChain, "%v of chunk %x: secondaries %v, the lease at version %d names %v: look the chunk up again",
			h.Op, req.Handle, req.Secondaries, req.Version, l.secondaries)
	}
	m := &mutation{
		op: h.Op, version: req.Version, off: req.Offset, inline: inline, id: req.ID,
		sync: h.Flags&wire.FlagSync != 0, reqID: h.RequestID, wake: make(chan struct{}, 1),
	}
	if inline {
		m.buf = store.GetBuffer(int(req.Length))
		if _, err := io.ReadFull(c.br, m.buf.B); err != nil {
			store.PutBuffer(m.buf)
			return err
		}
		if xxhash.Sum64(m.buf.B) != req.DataSum {
			store.PutBuffer(m.buf)
			return c.replyErr(h, wire.StatusChecksum, "", "inline data does not match its checksum")
		}
	} else {
		m.buf, m.pushed = c.s.pushes.take(req.ID), true
		if m.buf == nil {
			return c.replyErr(h, wire.StatusNoPushData, "", fmt.Sprintf("no pushed data %d/%d buffered here (never pushed, or evicted)", req.ID.Client, req.ID.Seq))
		}
		if int64(len(m.buf.B)) != req.Length {
			c.s.pushes.release(m.buf)
			return c.replyErr(h, wire.StatusBadRequest, "", fmt.Sprintf("pushed data is %d bytes, request says %d", len(m.buf.B), req.Length))
		}
	}
	m.data = m.buf.B
	c.s.activeMutations.Add(1)
	// Pipelining: with more requests already buffered behind this one (or
	// answers still queued, which must go first), queue it and read on, so
	// that the client's next mutations join the same round.
	if inline && req.Length <= maxQueuedBytes && (c.br.Buffered() > 0 || c.nQueued.Load() > 0) {
		if c.s.queuedBytes.Add(req.Length) <= maxServerQueuedBytes {
			c.s.submit(hd, m)
			c.queue(m)
			return nil
		}
		c.s.queuedBytes.Add(-req.Length)
	}
	c.waitAnswers()
	c.s.submit(hd, m)
	<-m.wake
	st, replica, msg, off := m.status, m.replica, m.msg, m.resOff
	c.s.doneMutation(m)
	if st != wire.StatusOK {
		return c.replyErr(h, st, replica, msg)
	}
	return c.reply(h, wire.StatusOK, &wire.MutationResponse{Offset: off}, 0)
}

// submit queues m on its chunk's sequencer, starting one if none runs; m's
// wake channel says when a round ran it. Group commit: the sequencer takes
// every mutation queued so far as one round.
func (s *Server) submit(h store.Handle, m *mutation) {
	q := s.seqs.get(h)
	q.mu.Lock()
	q.pending = append(q.pending, m)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		s.wg.Add(1) // the caller is a connection goroutine, itself counted
		go s.sequence(h, q)
	}
}

// sequence runs chunk h's rounds, one after another, each taking every
// mutation queued when it starts, until none is left.
func (s *Server) sequence(h store.Handle, q *chunkSeq) {
	defer s.wg.Done()
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		for len(batch) > 0 {
			// A round holds mutations of one version (whose lease names the
			// secondaries: every mutation admitted named exactly them).
			n := 1
			for n < len(batch) && batch[n].version == batch[0].version {
				n++
			}
			q.serial++
			s.runRound(h, q.serial, batch[:n])
			batch = batch[n:]
		}
	}
}

// finish records a mutation's result and wakes its caller.
func finish(m *mutation, st wire.Status, replica, msg string) {
	m.status, m.replica, m.msg = st, replica, msg
	m.wake <- struct{}{}
}

// applyOp is one mutation of a round, as applied on every replica.
type applyOp struct {
	kind wire.ApplyKind
	off  int64
	data []byte // write kinds
	id   wire.PushID
}

// runRound runs one round on the primary: check the lease and version,
// assign offsets (record append: at the end; pad when it does not fit),
// apply on the secondaries and locally in parallel, then answer every
// mutation of the round with the common outcome.
func (s *Server) runRound(h store.Handle, serial uint64, ms []*mutation) {
	if hook := s.opts.testRoundHook; hook != nil {
		hook(h, len(ms))
	}
	version := ms[0].version
	fail := func(st wire.Status, replica, msg string) {
		for _, m := range ms {
			finish(m, st, replica, msg)
		}
	}
	l, ok := s.leases.validLease(h, version, time.Now())
	if !ok {
		fail(wire.StatusNotPrimary, "", fmt.Sprintf("lease on chunk %x at version %d expired or revoked", uint64(h), version))
		return
	}
	info, err := s.store.Info(h)
	if err != nil {
		fail(storeStatus(err), "", fmt.Sprintf("chunk %x: %v", uint64(h), err))
		return
	}
	if uint64(info.Version) != version {
		fail(wire.StatusStaleVersion, "", fmt.Sprintf("chunk %x is at version %d here, request at %d", uint64(h), info.Version, version))
		return
	}
	length := info.Length
	ops := make([]applyOp, 0, len(ms))
	full := make([]bool, len(ms))
	for i, m := range ms {
		size := int64(len(m.data))
		if m.op == wire.OpAppend {
			if length+size > s.chunkSize {
				// GFS 3.3: pad the chunk on every replica; the client
				// retries on the next chunk.
				if length < s.chunkSize {
					ops = append(ops, applyOp{kind: wire.ApplyPad, off: s.chunkSize})
					length = s.chunkSize
				}
				full[i] = true
				continue
			}
			m.resOff = length
		} else {
			m.resOff = m.off
		}
		kind := wire.ApplyPushed
		if m.inline {
			kind = wire.ApplyInline
		}
		ops = append(ops, applyOp{kind: kind, off: m.resOff, data: m.data, id: m.id})
		length = max(length, m.resOff+size)
	}
	ops, merged := coalesce(ops)
	defer func() {
		for _, b := range merged {
			store.PutBuffer(b)
		}
	}()
	doSync := false
	for _, m := range ms {
		doSync = doSync || m.sync
	}

	// Secondaries apply while the primary applies locally; the round's
	// order is the same everywhere because rounds of a chunk never overlap.
	// They are the lease's: a chain's order may differ between clients.
	secs := l.secondaries
	results := make([]error, len(secs))
	replies := make([]peerReply, len(secs))
	var wg sync.WaitGroup
	for i, addr := range secs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.sendApply(addr, h, version, serial, ops, doSync, l.applyCap, &replies[i])
		}()
	}
	localErr := s.applyLocal(h, ops, doSync)
	wg.Wait()
	for i, err := range results {
		if err != nil || replies[i].status != wire.StatusOK {
			// A replica may now lack data the others have: let the lease
			// lapse so the next one comes with a new version (before the
			// mutation is noted for the heartbeat's extension requests).
			s.leases.taint(h)
		}
	}
	if len(ops) > 0 {
		s.tracker.mutatedChunk(h)
	}
	if localErr != nil {
		s.log.Warn("mutation failed locally", "chunk", uint64(h), "err", localErr)
		fail(storeStatus(localErr), "", fmt.Sprintf("primary applying to chunk %x: %v", uint64(h), localErr))
		return
	}
	for i, err := range results {
		if err != nil {
			s.log.Warn("mutation failed on secondary", "chunk", uint64(h), "secondary", secs[i], "err", err)
			fail(wire.StatusUnavailable, secs[i], fmt.Sprintf("secondary %s: %v", secs[i], err))
			return
		}
		if r := &replies[i]; r.status != wire.StatusOK {
			replica := r.err.Replica
			if replica == "" {
				replica = secs[i]
			}
			fail(r.status, replica, fmt.Sprintf("secondary %s: %s", secs[i], r.err.Message))
			return
		}
	}
	for i, m := range ms {
		if full[i] {
			finish(m, wire.StatusChunkFull, "", fmt.Sprintf("record of %d bytes does not fit in chunk %x: padded, use the next chunk", len(m.data), uint64(h)))
		} else {
			finish(m, wire.StatusOK, "", "")
		}
	}
}

// coalesceMax bounds the writes coalesce merges (copying small inline
// records is cheap; pushed data stays where it is). A round of pipelined
// appends holds ~0.5 MiB: one O_DIRECT write of it ran 57-63k appends/s
// where 256 KiB pieces ran 46-50k (BenchmarkAppend16Pipelined/window16),
// each write costing 50-70 us of CPU on this VM whatever its size.
const coalesceMax = 1 << 20

// coalesce merges runs of adjacent small inline writes (group-committed
// record appends) into one write per run, so a round costs one store write
// and one apply op however many records it holds. It returns the merged
// buffers for the caller to release.
func coalesce(ops []applyOp) ([]applyOp, []*store.Buffer) {
	var merged []*store.Buffer
	out := ops[:0]
	for i := 0; i < len(ops); {
		j, total := i+1, int64(len(ops[i].data))
		if ops[i].kind == wire.ApplyInline {
			for j < len(ops) && ops[j].kind == wire.ApplyInline && ops[j].off == ops[j-1].off+int64(len(ops[j-1].data)) &&
				total+int64(len(ops[j].data)) <= coalesceMax {
				total += int64(len(ops[j].data))
				j++
			}
		}
		if j == i+1 {
			out = append(out, ops[i])
			i = j
			continue
		}
		b := store.GetBuffer(int(total))
		merged = append(merged, b)
		pos := 0
		for k := i; k < j; k++ {
			pos += copy(b.B[pos:], ops[k].data)
		}
		out = append(out, applyOp{kind: wire.ApplyInline, off: ops[i].off, data: b.B})
		i = j
	}
	return out, merged
}

// applyLocal applies a round's ops to the store in order.
func (s *Server) applyLocal(h store.Handle, ops []applyOp, sync bool) error {
	for _, op := range ops {
		var err error
		if op.kind == wire.ApplyPad {
			err = s.store.PadTo(h, op.off)
		} else {
			err = s.store.WriteAt(h, op.data, op.off)
		}
		if err != nil {
			return err
		}
	}
	if sync && len(ops) > 0 {
		return s.store.Sync(h)
	}
	return nil
}

// sendApply sends a round to one secondary, with capability tok (the
// master's apply capability for the chunk, which came with the lease), and
// reads its answer into r. An error means the secondary could not be reached or
// spoke garbage.
func (s *Server) sendApply(addr string, h store.Handle, version, serial uint64, ops []applyOp, sync bool, tok []byte, r *peerReply) error {
	pc, err := s.peers.get(s.ctx, addr)
	if err != nil {
		return err
	}
	err = s.sendApplyOn(pc, h, version, serial, ops, sync, tok, r)
	if err != nil && pc.retryable(err) && s.ctx.Err() == nil {
		// The secondary closed the pooled connection as idle before reading
		// the round. Sending it again is safe: a round it did apply is
		// refused by its serial.
		s.log.Debug("pooled connection to secondary went stale; sending the round again", "secondary", addr, "err", err)
		if pc, err = s.peers.dial(s.ctx, addr); err != nil {
			return err
		}
		err = s.sendApplyOn(pc, h, version, serial, ops, sync, tok, r)
	}
	return err
}

// sendApplyOn is one attempt of sendApply on pc, which it pools again or
// discards.
func (s *Server) sendApplyOn(pc *peerConn, h store.Handle, version, serial uint64, ops []applyOp, sync bool, tok []byte, r *peerReply) error {
	req := wire.ApplyRequest{Handle: uint64(h), Version: version, Serial: serial, Primary: s.addr, Ops: make([]wire.ApplyOp, len(ops))}
	bufs := make(net.Buffers, 1, 1+len(ops))
	payload := 0
	for i, op := range ops {
		req.Ops[i] = wire.ApplyOp{Kind: op.kind, Offset: op.off, Length: int64(len(op.data)), ID: op.id}
		if op.kind == wire.ApplyInline {
			bufs = append(bufs, op.data)
			payload += len(op.data)
		}
	}
	id := s.peers.reqID.Add(1)
	hd := wire.Header{Op: wire.OpApply, RequestID: id, PayloadLen: uint32(payload)}
	if sync {
		hd.Flags |= wire.FlagSync
	}
	pc.buf = wire.AppendRequest(pc.buf[:0], &hd, tok, &req)
	bufs[0] = pc.buf
	if _, err := bufs.WriteTo(pc.nc); err != nil {
		s.peers.discard(pc)
		return err
	}
	if err := pc.readReply(wire.OpApply, id, r); err != nil {
		s.peers.discard(pc)
		return err
	}
	s.peers.put(pc)
	return nil
}

// handleApply answers OpApply on a secondary: check the version and that
// the round comes from the primary accepted at this version with a newer
// serial, then apply the ops in order (pushed data taken from the push
// buffer, inline data from the payload).
func (c *dataConn) handleApply(h *wire.Header, meta []byte) error {
	req := &c.apply
	if err := req.Decode(meta); err != nil {
		return c.fail(h, wire.StatusBadRequest, "malformed apply request")
	}
	// Only a primary holds an apply capability for the chunk (the master
	// sends it with the lease): a client's write capability is not enough.
	if ok, err := c.authorize(h, req.Handle, capability.OpApply, false); !ok {
		return err
	}
	var inlineBytes int64
	for _, op := range req.Ops {
		switch {
		case op.Kind == wire.ApplyPad && (op.Offset < 0 || op.Offset > c.s.chunkSize):
			return c.fail(h, wire.StatusOutOfRange, "pad chunk %x to %d beyond the chunk size %d", req.Handle, op.Offset, c.s.chunkSize)
		case op.Kind != wire.ApplyPad && (op.Length <= 0 || op.Offset < 0 || op.Offset > c.s.chunkSize-op.Length):
			return c.fail(h, wire.StatusOutOfRange, "apply to chunk %x: write of %d bytes at %d outside the chunk", req.Handle, op.Length, op.Offset)
		case op.Kind == wire.ApplyInline:
			inlineBytes += op.Length
		}
	}
	if inlineBytes != int64(h.PayloadLen) {
		return c.fail(h, wire.StatusBadRequest, "apply payload of %d bytes, ops say %d", h.PayloadLen, inlineBytes)
	}
	payload := store.GetBuffer(int(inlineBytes))
	defer store.PutBuffer(payload)
	if _, err := io.ReadFull(c.br, payload.B); err != nil {
		return err
	}
	st, msg := c.s.applySecondary(req, payload.B, h.Flags&wire.FlagSync != 0)
	if st != wire.StatusOK {
		c.s.log.Debug("apply refused", "chunk", req.Handle, "status", st, "msg", msg)
		return c.replyErr(h, st, "", msg)
	}
	return c.reply(h, wire.StatusOK, nil, 0)
}

func (s *Server) applySecondary(req *wire.ApplyRequest, payload []byte, sync bool) (wire.Status, string) {
	hd := store.Handle(req.Handle)
	info, err := s.store.Info(hd)
	if err != nil {
		return storeStatus(err), fmt.Sprintf("chunk %x: %v", req.Handle, err)
	}
	if uint64(info.Version) != req.Version {
		return wire.StatusStaleVersion, fmt.Sprintf("chunk %x is at version %d on this replica, primary %s sent version %d", req.Handle, info.Version, req.Primary, req.Version)
	}
	if s.leases.valid(hd, req.Version, time.Now()) {
		return wire.StatusNotPrimary, fmt.Sprintf("chunk %x: this replica holds the lease itself; %s is not the primary", req.Handle, req.Primary)
	}
	q := s.seqs.get(hd)
	q.applyMu.Lock()
	defer q.applyMu.Unlock()
	if q.primaryVersion == req.Version {
		if q.primary != req.Primary {
			return wire.StatusNotPrimary, fmt.Sprintf("chunk %x at version %d takes mutations from primary %s, not %s", req.Handle, req.Version, q.primary, req.Primary)
		}
		if req.Serial <= q.lastSerial {
			return wire.StatusBadRequest, fmt.Sprintf("chunk %x: round %d after round %d from %s", req.Handle, req.Serial, q.lastSerial, req.Primary)
		}
	}
	// Take every pushed buffer before changing anything.
	ops := make([]applyOp, len(req.Ops))
	var taken []*store.Buffer
	defer func() {
		for _, b := range taken {
			s.pushes.release(b)
		}
	}()
	pos := int64(0)
	for i, op := range req.Ops {
		ops[i] = applyOp{kind: op.Kind, off: op.Offset, id: op.ID}
		switch op.Kind {
		case wire.ApplyInline:
			ops[i].data = payload[pos : pos+op.Length]
			pos += op.Length
		case wire.ApplyPushed:
			b := s.pushes.take(op.ID)
			if b == nil {
				return wire.StatusNoPushData, fmt.Sprintf("no pushed data %d/%d buffered on this replica (never pushed, or evicted)", op.ID.Client, op.ID.Seq)
			}
			taken = append(taken, b)
			if int64(len(b.B)) != op.Length {
				return wire.StatusBadRequest, fmt.Sprintf("pushed data %d/%d is %d bytes, apply says %d", op.ID.Client, op.ID.Seq, len(b.B), op.Length)
			}
			ops[i].data = b.B
		}
	}
	q.primary, q.primaryVersion, q.lastSerial = req.Primary, req.Version, req.Serial
	err = s.applyLocal(hd, ops, sync)
	if len(ops) > 0 {
		s.tracker.mutatedChunk(hd)
	}
	if err != nil {
		return storeStatus(err), fmt.Sprintf("applying to chunk %x: %v", req.Handle, err)
	}
	return wire.StatusOK, ""
}
