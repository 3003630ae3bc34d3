package chunkserver

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// maxPacketBytes is the forwarding unit of pushed data: a packet is read
// whole (or the rest of the push) and then forwarded; small enough that the
// next replica starts receiving at once, large enough to amortise the
// system calls.
const maxPacketBytes = 256 << 10

// handlePush answers OpPush: reserve room in the push buffer, read the
// payload into an aligned buffer packet by packet, forwarding each packet to
// the next replica as soon as it arrived (pipelined: the chain's last
// replica receives the first bytes before the client sent the last), check
// the data's checksum, wait for the downstream's answer, keep the data under
// its push id and answer.
func (c *dataConn) handlePush(h *wire.Header, meta []byte) error {
	req := &c.push
	if err := req.Decode(meta); err != nil {
		return c.fail(h, wire.StatusBadRequest, "malformed push request")
	}
	n := int64(h.PayloadLen)
	if n == 0 {
		return c.fail(h, wire.StatusBadRequest, "empty push")
	}
	// A push names no chunk: any chunk's write or append capability lets
	// data into the buffer; the mutation using it checks its own chunk.
	if ok, err := c.authorize(h, 0, capability.OpWrite|capability.OpAppend, true); !ok {
		return err
	}
	tok := c.capb[:h.CapLen] // forwarded down the chain
	if err := c.s.pushes.reserve(c.s.ctx, n, c.s.opts.PushWait); err != nil {
		st := wire.StatusBusy
		if errors.Is(err, errPushTooLarge) {
			st = wire.StatusTooLarge
		}
		return c.fail(h, st, "push of %d bytes: %v (cap %d bytes)", n, err, c.s.opts.PushBufferBytes)
	}
	buf := store.GetBuffer(int(n))
	keep := false
	defer func() {
		if !keep {
			c.s.pushes.release(buf)
		}
	}()

	// Open the downstream leg first so forwarding starts with the first packet.
	var down *peerConn
	var downAddr string
	var downErr error
	var downID uint64
	// downStale: the downstream leg failed on a pooled connection the next
	// replica had closed as idle, before any reply: once the whole payload
	// is here it is sent again, whole, on a new connection.
	downStale := false
	dropDown := func(err error) {
		downStale = down.retryable(err)
		c.s.peers.discard(down)
		down, downErr = nil, err
	}
	fwd := wire.PushRequest{ID: req.ID, DataSum: req.DataSum}
	if len(req.Downstream) > 0 {
		downAddr = req.Downstream[0]
		fwd.Downstream = req.Downstream[1:]
		down, downErr = c.s.peers.get(c.s.ctx, downAddr)
		if downErr == nil {
			downID = c.s.peers.reqID.Add(1)
			fh := wire.Header{Op: wire.OpPush, RequestID: downID, PayloadLen: h.PayloadLen}
			down.buf = wire.AppendRequest(down.buf[:0], &fh, tok, &fwd)
			if _, err := down.nc.Write(down.buf); err != nil {
				dropDown(err)
			}
		}
	}
	// Hash each packet as it arrives (after forwarding it), while it is in
	// cache, so the checksum check adds no latency after the last packet.
	c.dig.Reset()
	for got := int64(0); got < n; {
		m, err := io.ReadFull(c.br, buf.B[got:min(got+maxPacketBytes, n)])
		if m > 0 {
			if hook := c.s.opts.testPacketHook; hook != nil {
				hook(req.ID, got, int64(m))
			}
			if down != nil {
				if _, werr := down.nc.Write(buf.B[got : got+int64(m)]); werr != nil {
					dropDown(werr)
				}
			}
			_, _ = c.dig.Write(buf.B[got : got+int64(m)]) // after forwarding: off the chain's critical path
			got += int64(m)
		}
		if err != nil && got < n {
			if down != nil {
				c.s.peers.discard(down)
			}
			return fmt.Errorf("push payload: %w", err)
		}
	}
	if c.dig.Sum64() != req.DataSum {
		if down != nil {
			c.s.peers.discard(down)
		}
		return c.replyErr(h, wire.StatusChecksum, "", "pushed data does not match its checksum")
	}
	var r peerReply
	downOK := false
	if down != nil {
		if err := down.readReply(wire.OpPush, downID, &r); err != nil {
			dropDown(err)
		} else {
			c.s.peers.put(down)
			downOK = true
		}
	}
	if downErr != nil && downStale && c.s.ctx.Err() == nil {
		c.s.log.Debug("pooled connection down the chain went stale; forwarding the push again", "downstream", downAddr, "err", downErr)
		if downErr = c.s.pushWhole(downAddr, &fwd, tok, buf.B[:n], &r); downErr == nil {
			downOK = true
		}
	}
	if downOK && r.status != wire.StatusOK {
		replica := r.err.Replica
		if replica == "" {
			replica = downAddr
		}
		return c.replyErr(h, r.status, replica, r.err.Message)
	}
	if downErr != nil {
		return c.replyErr(h, wire.StatusUnavailable, downAddr, "forwarding push: "+downErr.Error())
	}
	keep = true
	c.s.pushes.put(req.ID, buf)
	return c.reply(h, wire.StatusOK, nil, 0)
}

// pushWhole forwards a push, payload complete, to addr on a new connection
// and reads the reply into r (the retry of a downstream leg that met a
// stale pooled connection; the next replica replaces data pushed twice
// under one id).
func (s *Server) pushWhole(addr string, fwd *wire.PushRequest, tok, data []byte, r *peerReply) error {
	pc, err := s.peers.dial(s.ctx, addr)
	if err != nil {
		return err
	}
	id := s.peers.reqID.Add(1)
	fh := wire.Header{Op: wire.OpPush, RequestID: id, PayloadLen: uint32(len(data))}
	pc.buf = wire.AppendRequest(pc.buf[:0], &fh, tok, fwd)
	bufs := net.Buffers{pc.buf, data}
	if _, err := bufs.WriteTo(pc.nc); err != nil {
		s.peers.discard(pc)
		return err
	}
	if err := pc.readReply(wire.OpPush, id, r); err != nil {
		s.peers.discard(pc)
		return err
	}
	s.peers.put(pc)
	return nil
}
