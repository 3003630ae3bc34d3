package chunkserver

import (
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// maxReadLength caps one read request so its block-aligned range (up to a
// block more on each side) fits wire.MaxPayload.
const maxReadLength = wire.MaxPayload - 2*store.BlockSize

// handleRead answers OpRead: the stored checksums of the covered blocks in
// the metadata, then the bytes of the block-aligned range, sent from the
// chunk file to the socket (sendfile or pread+write, see SendMode) plus the
// range's in-memory tail.
func (c *dataConn) handleRead(h *wire.Header, meta []byte) error {
	req := &c.read
	if err := req.Decode(meta); err != nil || h.PayloadLen != 0 {
		return c.fail(h, wire.StatusBadRequest, "malformed read request")
	}
	if req.Offset < 0 || req.Length < 0 {
		return c.fail(h, wire.StatusBadRequest, "read of chunk %x: negative offset %d or length %d", req.Handle, req.Offset, req.Length)
	}
	if req.Length > maxReadLength {
		return c.fail(h, wire.StatusTooLarge, "read of %d bytes over the cap of %d", req.Length, maxReadLength)
	}
	// A read capability, or the master's copy capability (re-replication).
	if ok, err := c.authorize(h, req.Handle, capability.OpRead|capability.OpCopy, false); !ok {
		return err
	}
	hd := store.Handle(req.Handle)
	info, err := c.s.store.Info(hd)
	if err != nil {
		return c.fail(h, storeStatus(err), "read chunk %x: %v", req.Handle, err)
	}
	if req.Version != 0 && uint64(info.Version) < req.Version {
		return c.fail(h, wire.StatusStaleVersion, "read chunk %x: replica at version %d, reader wants %d", req.Handle, info.Version, req.Version)
	}
	resp := &c.rresp
	resp.ChunkLength, resp.RangeOffset, resp.Sums = info.Length, 0, resp.Sums[:0]
	if req.Offset >= info.Length || req.Length == 0 {
		return c.reply(h, wire.StatusOK, resp, 0)
	}
	n := min(req.Length, info.Length-req.Offset)
	rng, err := c.s.store.OpenRange(hd, req.Offset, n)
	if err != nil {
		return c.fail(h, storeStatus(err), "read chunk %x at %d: %v", req.Handle, req.Offset, err)
	}
	defer rng.Release()
	resp.ChunkLength = max(info.Length, rng.Offset+rng.Length)
	resp.RangeOffset = rng.Offset
	resp.Sums = rng.Sums
	if err := c.reply(h, wire.StatusOK, resp, rng.Length); err != nil {
		resp.Sums = nil
		return err
	}
	resp.Sums = nil // the range owns them
	fileLen := rng.Length - int64(len(rng.Tail))
	if fileLen > 0 {
		if err := c.sendFile(rng.File, rng.Offset, fileLen); err != nil {
			return err
		}
	}
	if len(rng.Tail) > 0 {
		if _, err := c.nc.Write(rng.Tail); err != nil {
			return err
		}
	}
	return nil
}

// handleLength answers OpLength with the replica's length and version.
func (c *dataConn) handleLength(h *wire.Header, meta []byte) error {
	var req wire.LengthRequest
	if err := req.Decode(meta); err != nil || h.PayloadLen != 0 {
		return c.fail(h, wire.StatusBadRequest, "malformed length request")
	}
	if ok, err := c.authorize(h, req.Handle, capability.OpRead|capability.OpCopy, false); !ok {
		return err
	}
	info, err := c.s.store.Info(store.Handle(req.Handle))
	if err != nil {
		return c.fail(h, storeStatus(err), "length of chunk %x: %v", req.Handle, err)
	}
	if req.Version != 0 && uint64(info.Version) < req.Version {
		return c.fail(h, wire.StatusStaleVersion, "chunk %x: replica at version %d, reader wants %d", req.Handle, info.Version, req.Version)
	}
	return c.reply(h, wire.StatusOK, &wire.LengthResponse{Length: info.Length, Version: uint64(info.Version)}, 0)
}
