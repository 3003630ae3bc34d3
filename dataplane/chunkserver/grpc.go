package chunkserver

import (
	"context"
	"errors"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// grpcService implements controlpb.ChunkserverServer: the calls the master
// makes on this chunkserver.
type grpcService struct {
	controlpb.UnimplementedChunkserverServer
	s *Server
}

// storeCode maps a store error onto a control error code.
func storeCode(err error) controlpb.ErrorCode {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK
	case errors.Is(err, store.ErrExists):
		return controlpb.ErrorCode_ERROR_CODE_EXISTS
	case errors.Is(err, store.ErrNoSpace):
		return controlpb.ErrorCode_ERROR_CODE_NO_SPACE
	case errors.Is(err, store.ErrOutOfRange):
		return controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT
	default:
		return controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED
	}
}

// CreateChunk creates an empty chunk at the given version (EXISTS if present).
func (g *grpcService) CreateChunk(ctx context.Context, req *controlpb.CreateChunkRequest) (*controlpb.CreateChunkResponse, error) {
	if req.GetHandle() == 0 {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT, "create chunk: handle 0")
	}
	h := store.Handle(req.GetHandle())
	if err := g.s.store.Create(h, store.Version(req.GetVersion())); err != nil {
		return nil, control.Errorf(storeCode(err), "create chunk %x: %v", req.GetHandle(), err)
	}
	g.s.tracker.changed(h)
	g.s.log.Debug("chunk created", "chunk", req.GetHandle(), "version", req.GetVersion())
	return &controlpb.CreateChunkResponse{}, nil
}

// SetVersion durably moves a chunk from expected_version to version
// (idempotent when already there) and voids a lease at another version.
func (g *grpcService) SetVersion(ctx context.Context, req *controlpb.SetVersionRequest) (*controlpb.SetVersionResponse, error) {
	h := store.Handle(req.GetHandle())
	info, err := g.s.store.Info(h)
	if err != nil {
		return nil, control.Errorf(storeCode(err), "set version of chunk %x: %v", req.GetHandle(), err)
	}
	if uint64(info.Version) == req.GetVersion() {
		return &controlpb.SetVersionResponse{Length: info.Length}, nil // idempotent retry
	}
	if uint64(info.Version) != req.GetExpectedVersion() {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION,
			"set version of chunk %x to %d: replica at version %d, expected %d", req.GetHandle(), req.GetVersion(), info.Version, req.GetExpectedVersion())
	}
	if err := g.s.store.SetVersion(h, store.Version(req.GetVersion())); err != nil {
		return nil, control.Errorf(storeCode(err), "set version of chunk %x: %v", req.GetHandle(), err)
	}
	// A lease at the old version is void (GFS 4.5: a new lease means a new version).
	if l, ok := g.s.leases.held(h, time.Now()); ok && l.version != req.GetVersion() {
		g.s.leases.revoke(h)
	}
	g.s.tracker.changed(h)
	info, err = g.s.store.Info(h)
	if err != nil {
		return nil, control.Errorf(storeCode(err), "set version of chunk %x: %v", req.GetHandle(), err)
	}
	return &controlpb.SetVersionResponse{Length: info.Length}, nil
}

// GrantLease makes this server primary of a chunk at version for lease_ms,
// counted from receipt minus the margin (GFS 3.1).
func (g *grpcService) GrantLease(ctx context.Context, req *controlpb.GrantLeaseRequest) (*controlpb.GrantLeaseResponse, error) {
	received := time.Now() // the lease counts from here (minus the margin)
	if req.GetLeaseMs() <= 0 {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT, "grant lease on chunk %x: lease of %d ms", req.GetHandle(), req.GetLeaseMs())
	}
	h := store.Handle(req.GetHandle())
	info, err := g.s.store.Info(h)
	if err != nil {
		return nil, control.Errorf(storeCode(err), "grant lease on chunk %x: %v", req.GetHandle(), err)
	}
	if uint64(info.Version) != req.GetVersion() {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION,
			"grant lease on chunk %x at version %d: replica at version %d", req.GetHandle(), req.GetVersion(), info.Version)
	}
	if len(req.GetSecondaries()) >= wire.MaxChain || len(req.GetApplyCapability()) > wire.MaxCapability {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT, "grant lease on chunk %x: %d secondaries, apply capability of %d bytes", req.GetHandle(), len(req.GetSecondaries()), len(req.GetApplyCapability()))
	}
	g.s.leases.grant(h, req.GetVersion(), req.GetSecondaries(), req.GetApplyCapability(), received, time.Duration(req.GetLeaseMs())*time.Millisecond, g.s.leaseMargin)
	g.s.log.Debug("lease granted", "chunk", req.GetHandle(), "version", req.GetVersion(), "lease_ms", req.GetLeaseMs())
	return &controlpb.GrantLeaseResponse{}, nil
}

// CopyChunk copies a chunk from a good replica now and answers once the
// copy is complete and synced: the master adds a replica this way after a
// version bump and before the lease that follows.
func (g *grpcService) CopyChunk(ctx context.Context, req *controlpb.CopyCommand) (*controlpb.CopyChunkResponse, error) {
	h := req.GetHandle()
	if h == 0 || req.GetSource() == "" || len(req.GetSource()) > wire.MaxAddr {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT, "copy chunk %x from %q: bad handle or source", h, req.GetSource())
	}
	if !g.s.copying.begin(h) {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_TRY_AGAIN, "copy chunk %x: a copy of it is running here", h)
	}
	defer g.s.copying.end(h)
	if err := g.s.copyChunk(ctx, req); err != nil {
		return nil, control.Errorf(storeCode(err), "copy chunk %x from %s: %v", h, req.GetSource(), err)
	}
	info, err := g.s.store.Info(store.Handle(h))
	if err != nil {
		return nil, control.Errorf(storeCode(err), "copy chunk %x: %v", h, err)
	}
	return &controlpb.CopyChunkResponse{Version: uint64(info.Version), Length: info.Length}, nil
}

// BlockChecksums answers another replica's (or the master's) question for
// the stored checksums of a chunk at a version: the replica check compares
// them across replicas (replicacheck.go). Under TLS only master and
// chunkserver certificates may call it (New's policy).
func (g *grpcService) BlockChecksums(ctx context.Context, req *controlpb.BlockChecksumsRequest) (*controlpb.BlockChecksumsResponse, error) {
	cs, err := g.s.store.BlockChecksums(store.Handle(req.GetHandle()))
	if err != nil {
		return nil, control.Errorf(storeCode(err), "block checksums of chunk %x: %v", req.GetHandle(), err)
	}
	if uint64(cs.Version) != req.GetVersion() {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION,
			"block checksums of chunk %x at version %d: replica at version %d", req.GetHandle(), req.GetVersion(), cs.Version)
	}
	return &controlpb.BlockChecksumsResponse{Version: uint64(cs.Version), Length: cs.Length, Sums: cs.Sums, Corrupt: cs.Corrupt}, nil
}

// RevokeLease drops the lease now; mutations are refused from here on.
func (g *grpcService) RevokeLease(ctx context.Context, req *controlpb.RevokeLeaseRequest) (*controlpb.RevokeLeaseResponse, error) {
	g.s.leases.revoke(store.Handle(req.GetHandle()))
	return &controlpb.RevokeLeaseResponse{}, nil
}
