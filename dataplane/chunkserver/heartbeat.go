package chunkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/store"
)

// maxConcurrentCopies bounds re-replication copies running at once.
const maxConcurrentCopies = 2

// copyPieceBytes is the read size of a re-replication copy.
const copyPieceBytes = 8 << 20

// heartbeatLoop registers with the master, then heartbeats every interval
// until ctx ends, re-registering when the master asks or forgot us.
func (s *Server) heartbeatLoop(ctx context.Context) {
	cc, err := control.Dial(s.opts.MasterAddr, s.dialTLS)
	if err != nil {
		s.log.Error("cannot dial master; no heartbeats", "master", s.opts.MasterAddr, "err", err)
		return
	}
	defer cc.Close()
	mc := controlpb.NewMasterClient(cc)
	copies := make(chan struct{}, maxConcurrentCopies)

	interval := s.opts.HeartbeatInterval
	registered := false
	for {
		if !registered {
			iv, err := s.register(ctx, mc)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("register with master failed; retrying", "master", s.opts.MasterAddr, "err", err)
			} else {
				registered = true
				if iv > 0 {
					interval = iv
				}
			}
		} else {
			resp, err := s.heartbeat(ctx, mc)
			switch {
			case err != nil && control.Code(err) == controlpb.ErrorCode_ERROR_CODE_UNKNOWN_SERVER:
				registered = false
				continue
			case err != nil:
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("heartbeat failed", "master", s.opts.MasterAddr, "err", err)
			default:
				if resp.GetReregister() {
					registered = false
				}
				s.execute(ctx, resp, copies)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		case <-s.hbKick:
			// A copy finished: report it now, so the master counts the
			// new replica and can schedule the next copy without waiting
			// a whole interval.
		}
	}
}

// register sends the full chunk report; it returns the heartbeat interval
// the master asks for.
func (s *Server) register(ctx context.Context, mc controlpb.MasterClient) (time.Duration, error) {
	// Everything is in the full report: pending deltas are moot.
	s.tracker.take()
	free, total, err := s.store.Space()
	if err != nil {
		s.log.Warn("disk space unknown", "err", err)
	}
	req := &controlpb.RegisterRequest{Addr: s.addr, Rack: s.opts.Rack, CapacityBytes: total, FreeBytes: free}
	for _, ci := range s.store.List() {
		req.Chunks = append(req.Chunks, report(ci))
	}
	cctx, cancel := control.CallContext(ctx)
	defer cancel()
	resp, err := mc.Register(cctx, req)
	if err != nil {
		return 0, err
	}
	s.setKeys(resp.GetCapabilityKeys())
	s.log.Info("registered with master", "master", s.opts.MasterAddr, "chunks", len(req.Chunks))
	return time.Duration(resp.GetHeartbeatIntervalMs()) * time.Millisecond, nil
}

func report(ci store.ChunkInfo) *controlpb.ChunkReport {
	return &controlpb.ChunkReport{Handle: uint64(ci.Handle), Version: uint64(ci.Version), Length: ci.Length, Corrupt: ci.Corrupt}
}

// heartbeat sends the deltas since the last heartbeat, lease extension
// requests for leased chunks mutated since, and free space; it applies
// the granted extensions counted from when it sent the request.
func (s *Server) heartbeat(ctx context.Context, mc controlpb.MasterClient) (*controlpb.HeartbeatResponse, error) {
	changed, removed, mutated := s.tracker.take()
	free, total, _ := s.store.Space()
	req := &controlpb.HeartbeatRequest{
		Addr: s.addr, FreeBytes: free, CapacityBytes: total,
		ActiveMutations: s.activeMutations.Load(),
	}
	for h := range changed {
		ci, err := s.store.Info(h)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				req.Removed = append(req.Removed, uint64(h))
			}
			continue
		}
		req.Changed = append(req.Changed, report(ci))
	}
	for h := range removed {
		req.Removed = append(req.Removed, uint64(h))
	}
	sent := time.Now()
	for h := range mutated {
		if s.leases.wantsExtension(h, sent) {
			req.LeaseExtensions = append(req.LeaseExtensions, uint64(h))
		}
	}
	cctx, cancel := control.CallContext(ctx)
	defer cancel()
	resp, err := mc.Heartbeat(cctx, req)
	if err != nil {
		s.tracker.restore(changed, removed, mutated)
		return nil, err
	}
	s.setKeys(resp.GetCapabilityKeys())
	for _, ext := range resp.GetExtensions() {
		s.leases.extend(store.Handle(ext.GetHandle()), ext.GetVersion(), ext.GetApplyCapability(), sent, time.Duration(ext.GetLeaseMs())*time.Millisecond, s.leaseMargin)
	}
	for _, h := range resp.GetRevoked() {
		s.leases.revoke(store.Handle(h))
	}
	return resp, nil
}

// copyGuard lets one copy of a chunk run at a time.
type copyGuard struct {
	mu      sync.Mutex
	running map[uint64]bool // guarded by mu
}

// begin claims chunk h for a copy; false if one is running.
func (g *copyGuard) begin(h uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running[h] {
		return false
	}
	if g.running == nil {
		g.running = make(map[uint64]bool)
	}
	g.running[h] = true
	return true
}

func (g *copyGuard) end(h uint64) {
	g.mu.Lock()
	delete(g.running, h)
	g.mu.Unlock()
}

// execute carries out a heartbeat reply's commands: deletions now, copies
// in the background (bounded, one per chunk, waited for by Close).
func (s *Server) execute(ctx context.Context, resp *controlpb.HeartbeatResponse, copies chan struct{}) {
	for _, h := range resp.GetDelete() {
		s.deleteChunk(store.Handle(h))
	}
	for _, cmd := range resp.GetCopy() {
		if !s.copying.begin(cmd.GetHandle()) {
			continue
		}
		select {
		case copies <- struct{}{}:
		case <-ctx.Done():
			s.copying.end(cmd.GetHandle())
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				<-copies
				s.copying.end(cmd.GetHandle())
			}()
			if err := s.copyChunk(ctx, cmd); err != nil {
				s.log.Warn("re-replication copy failed", "chunk", cmd.GetHandle(), "source", cmd.GetSource(), "err", err)
			}
		}()
	}
}

func (s *Server) deleteChunk(h store.Handle) {
	if s.dropChunk(h) {
		s.tracker.removedChunk(h)
	}
}

// dropChunk deletes chunk h and what the server keeps about it, without
// noting the removal for the next heartbeat; false if it could not.
func (s *Server) dropChunk(h store.Handle) bool {
	s.leases.revoke(h)
	if err := s.store.Delete(h); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("delete chunk failed", "chunk", uint64(h), "err", err)
		return false
	}
	s.seqs.remove(h)
	s.log.Debug("chunk deleted", "chunk", uint64(h))
	return true
}

// copyChunk fetches a chunk from a good replica with verified reads and
// stores it. The copy is created at version 0 and gets its real version
// only once complete and synced, so a partial copy never claims the
// version (the master treats it as stale and deletes it).
func (s *Server) copyChunk(ctx context.Context, cmd *controlpb.CopyCommand) error {
	h := store.Handle(cmd.GetHandle())
	if ci, err := s.store.Info(h); err == nil {
		if uint64(ci.Version) > cmd.GetVersion() && !ci.Corrupt {
			// Newer than the master knows (it failed mid-grant): report it.
			s.tracker.changed(h)
			return nil
		}
		// The master does not count this replica (stale, corrupt,
		// divergent or partial): replace it. Its removal is not reported
		// while the copy runs: the master would take it for the copy
		// failing and refuse the copy; the copy's outcome is reported
		// instead (changed, or removed when it fails).
		s.dropChunk(h)
		defer func() {
			if _, err := s.store.Info(h); errors.Is(err, store.ErrNotFound) {
				s.tracker.removedChunk(h)
			}
		}()
	}
	// The master's copy capability for this chunk, shown to the source.
	ctx = capability.NewContext(ctx, cmd.GetCapability())
	length, err := s.dc.Length(ctx, cmd.GetSource(), cmd.GetHandle(), cmd.GetVersion())
	if err != nil {
		return err
	}
	if err := s.store.Create(h, 0); err != nil {
		return fmt.Errorf("create local copy: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			s.deleteChunk(h)
		}
	}()
	buf := store.GetBuffer(copyPieceBytes)
	defer store.PutBuffer(buf)
	// Copy until the source stops growing (an append may land while we
	// copy); bounded, the master re-schedules what is still short.
	off := int64(0)
	for pass := 0; pass < 4 && off < length; pass++ {
		for off < length {
			n, err := s.dc.Read(ctx, cmd.GetSource(), cmd.GetHandle(), cmd.GetVersion(), off, buf.B[:min(int64(len(buf.B)), length-off)])
			if n > 0 {
				if werr := s.store.WriteAt(h, buf.B[:n], off); werr != nil {
					return fmt.Errorf("write local copy at %d: %w", off, werr)
				}
				off += int64(n)
			}
			if err == io.EOF {
				length = off
				break
			}
			if err != nil {
				return fmt.Errorf("read from %s at %d: %w", cmd.GetSource(), off, err)
			}
		}
		if length, err = s.dc.Length(ctx, cmd.GetSource(), cmd.GetHandle(), cmd.GetVersion()); err != nil {
			return err
		}
	}
	if off != length {
		return fmt.Errorf("source %s kept growing (%d of %d bytes copied)", cmd.GetSource(), off, length)
	}
	// Durable, at its version, and clean: every byte was verified against
	// the source's checksums as it arrived.
	if err := s.store.Commit(h, store.Version(cmd.GetVersion())); err != nil {
		return err
	}
	ok = true
	s.tracker.changed(h)
	select {
	case s.hbKick <- struct{}{}:
	default:
	}
	s.log.Info("chunk copied", "chunk", cmd.GetHandle(), "version", cmd.GetVersion(), "source", cmd.GetSource(), "bytes", length)
	return nil
}

var _ grpc.ClientConnInterface = (*grpc.ClientConn)(nil)
