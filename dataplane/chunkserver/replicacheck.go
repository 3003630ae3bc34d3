package chunkserver

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/divergence"
	"github.com/gfs-go/gfs/dataplane/store"
)

// maxCheckPeers bounds the control connections the replica check keeps to
// other chunkservers; past it they are all closed and dialled again.
const maxCheckPeers = 64

// ReplicaChecks counts the replica check's work (Options.ReplicaCheckInterval).
type ReplicaChecks struct {
	// Compared: chunks whose replicas' checksums were compared (this
	// server being the lowest-address live replica and no lease held).
	Compared uint64
	// Reported: divergent replicas reported to the master (each seen
	// twice, a pause apart, at the same version).
	Reported uint64
}

// replicaCheckCounters are the Server fields behind ReplicaChecks.
type replicaCheckCounters struct {
	checksCompared atomic.Uint64
	checksReported atomic.Uint64
}

// ReplicaChecks returns what the replica check did so far.
func (s *Server) ReplicaChecks() ReplicaChecks {
	return ReplicaChecks{Compared: s.checksCompared.Load(), Reported: s.checksReported.Load()}
}

// replicaChecker is the replica check's state, owned by replicaCheckLoop:
// the scrubber of the store verifies each replica against its own
// checksums; this compares the checksums of a chunk's replicas with each
// other, so replicas that verify alone but hold other bytes at the same
// version (a write one replica applied and another refused) are found
// and replaced from the chunk's good copy, as gfs fsck -verify does.
type replicaChecker struct {
	s      *Server
	mc     controlpb.MasterClient
	peers  map[string]*grpc.ClientConn // control connections to other chunkservers
	cursor store.Handle                // the next check takes the first chunk above it
}

// replicaCheckLoop checks one chunk every ReplicaCheckInterval until ctx
// ends (started by Serve, waited for by Close).
func (s *Server) replicaCheckLoop(ctx context.Context) {
	cc, err := control.Dial(s.opts.MasterAddr, s.dialTLS)
	if err != nil {
		s.log.Error("cannot dial master; no replica check", "master", s.opts.MasterAddr, "err", err)
		return
	}
	defer cc.Close()
	rc := &replicaChecker{s: s, mc: controlpb.NewMasterClient(cc), peers: make(map[string]*grpc.ClientConn)}
	defer rc.closePeers()
	for {
		if !rc.sleep(ctx, s.opts.ReplicaCheckInterval) {
			return
		}
		rc.checkNext(ctx)
	}
}

func (rc *replicaChecker) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (rc *replicaChecker) closePeers() {
	for _, cc := range rc.peers {
		cc.Close()
	}
	clear(rc.peers)
}

// checkNext compares the chunk after the cursor (in handle order, round
// and round) with its other replicas and reports the divergent ones. A
// divergence is reported only when a second comparison, one interval
// later at the same version and still without a lease, finds it again: a
// mutation round in flight as a lease ended cannot cause a report.
func (rc *replicaChecker) checkNext(ctx context.Context) {
	var next *store.ChunkInfo
	chunks := rc.s.store.List() // sorted by handle
	for i := range chunks {
		if chunks[i].Handle > rc.cursor && !chunks[i].Corrupt {
			next = &chunks[i]
			break
		}
	}
	if next == nil {
		rc.cursor = 0
		return
	}
	rc.cursor = next.Handle
	h := next.Handle
	v, first := rc.compare(ctx, h)
	if len(first) == 0 || !rc.sleep(ctx, rc.s.opts.ReplicaCheckInterval) {
		return
	}
	v2, again := rc.compare(ctx, h)
	if v2 != v {
		return
	}
	for _, dv := range again {
		if !slices.ContainsFunc(first, func(d divergence.Divergence) bool { return d.Addr == dv.Addr }) {
			continue
		}
		reason := fmt.Sprintf("replica check by %s: replica diverges from the chunk's good copy at version %d (block %d, length %d)", rc.s.addr, v, dv.Block, dv.Length)
		cctx, cancel := control.CallContext(ctx)
		_, err := rc.mc.ReportBadReplica(cctx, &controlpb.ReportBadReplicaRequest{Handle: uint64(h), Replica: dv.Addr, Reason: reason, Version: v})
		cancel()
		if err != nil {
			rc.s.log.Warn("replica check: report of a divergent replica failed", "chunk", uint64(h), "version", v, "replica", dv.Addr, "err", err)
			continue
		}
		rc.s.checksReported.Add(1)
		rc.s.log.Warn("replica check: divergent replica reported to the master", "chunk", uint64(h), "version", v, "replica", dv.Addr, "block", dv.Block, "length", dv.Length)
	}
}

// compare compares chunk h's replicas once, when this server is the one to
// do it: the lowest-address live replica (so each chunk is compared by one
// server), at the master's version, with no lease held (the chunk cannot
// change: a new lease bumps the version first, which every replica
// refuses to answer for the old one). It returns the version compared and
// the replicas that diverge from the good copy (package divergence; no
// primary, settled).
func (rc *replicaChecker) compare(ctx context.Context, h store.Handle) (uint64, []divergence.Divergence) {
	cctx, cancel := control.CallContext(ctx)
	resp, err := rc.mc.LocateChunk(cctx, &controlpb.LocateChunkRequest{Handle: uint64(h)})
	cancel()
	if err != nil {
		rc.s.log.Debug("replica check: locate failed", "chunk", uint64(h), "err", err)
		return 0, nil
	}
	loc := resp.GetLocation()
	v, replicas := loc.GetVersion(), loc.GetReplicas()
	if loc.GetPrimary() != "" || len(replicas) < 2 || !slices.Contains(replicas, rc.s.addr) || slices.Min(replicas) != rc.s.addr {
		return v, nil
	}
	local, err := rc.s.store.BlockChecksums(h)
	if err != nil || uint64(local.Version) != v || local.Corrupt {
		return v, nil
	}
	rs := make([]divergence.Replica, 0, len(replicas))
	for _, addr := range replicas {
		if addr == rc.s.addr {
			rs = append(rs, divergence.Replica{Addr: addr, Length: local.Length, Blocks: local.Sums})
			continue
		}
		r, err := rc.peerChecksums(ctx, addr, h, v)
		if err != nil {
			// Down, stale, being replaced: compare the others.
			rc.s.log.Debug("replica check: peer checksums", "chunk", uint64(h), "version", v, "peer", addr, "err", err)
			continue
		}
		if r.GetCorrupt() || r.GetVersion() != v || r.GetLength() < 0 ||
			int64(len(r.GetSums())) != (r.GetLength()+divergence.BlockSize-1)/divergence.BlockSize {
			// Known bad, moved on, or an answer that does not add up
			// (one sum per block): nothing to compare.
			continue
		}
		rs = append(rs, divergence.Replica{Addr: addr, Length: r.GetLength(), Blocks: r.GetSums()})
	}
	if len(rs) < 2 {
		return v, nil
	}
	if now, err := rc.s.store.Info(h); err != nil || uint64(now.Version) != v {
		return v, nil // moved on while the peers answered
	}
	rc.s.checksCompared.Add(1)
	return v, divergence.Find(rs, "", true)
}

// peerChecksums asks chunkserver addr for chunk h's block checksums at v.
func (rc *replicaChecker) peerChecksums(ctx context.Context, addr string, h store.Handle, v uint64) (*controlpb.BlockChecksumsResponse, error) {
	cc := rc.peers[addr]
	if cc == nil {
		if len(rc.peers) >= maxCheckPeers {
			rc.closePeers()
		}
		var err error
		if cc, err = control.Dial(addr, rc.s.dialTLS); err != nil {
			return nil, err
		}
		rc.peers[addr] = cc
	}
	cctx, cancel := control.CallContext(ctx)
	defer cancel()
	resp, err := controlpb.NewChunkserverClient(cc).BlockChecksums(cctx, &controlpb.BlockChecksumsRequest{Handle: uint64(h), Version: v})
	if err != nil && control.Code(err) == controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		// Not an answer (down, restarting): dial afresh next time rather
		// than wait out the connection's reconnect backoff.
		cc.Close()
		delete(rc.peers, addr)
	}
	return resp, err
}
