package chunkserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
	"github.com/gfs-go/gfs/internal/connlimit"
)

// readBufSize is a connection's read buffer: a small request's header,
// capability, metadata and payload arrive in one read(2), and so do several
// pipelined requests; larger payloads bypass it.
const readBufSize = 64 << 10

// Read-ahead of mutations (a client pipelining record appends): at most
// maxQueued per connection wait for their answers, each with at most
// maxQueuedBytes of inline data, and at most maxServerQueuedBytes of such
// data over all connections. A mutation past these limits is answered
// before the next request is read, as without pipelining.
const (
	maxQueued            = 64
	maxQueuedBytes       = 64 << 10
	maxServerQueuedBytes = 256 << 20
)

// dataConn serves the data protocol on one connection. Requests are read
// and answered in order; small mutations that arrive while others are
// buffered behind them are queued to their chunk's sequencer without
// waiting (so a pipelining client's appends share a round), and the answer
// writer sends their answers in request order. Buffers and decoded requests
// are reused across requests so the steady state allocates little.
type dataConn struct {
	s    *Server
	nc   net.Conn
	br   *bufio.Reader
	hdr  [wire.HeaderSize]byte
	capb [wire.MaxCapability]byte
	meta []byte
	out  []byte
	copy []byte // SendCopy buffer
	dig  xxhash.Digest

	read  wire.ReadRequest
	rresp wire.ReadResponse
	push  wire.PushRequest
	mut   wire.MutationRequest
	apply wire.ApplyRequest

	// Queued mutations, answered by writeAnswers in request order.
	answers    chan *mutation // nil until the first queued mutation
	queued     sync.WaitGroup // queued and not yet answered
	nQueued    atomic.Int32   // the same count, for a cheap check
	writerDone chan struct{}
	wout       []byte // writeAnswers' frame buffer

	// refusePlain: this plaintext connection reached a DataTLS server;
	// its first request is answered StatusTLSRequired, then it is closed.
	refusePlain bool
}

// handler serves one request whose header and metadata were read. It
// answers the request itself; a returned error closes the connection (the
// stream is no longer at a frame boundary or the peer is gone).
type handler func(c *dataConn, h *wire.Header, meta []byte) error

// handlers is the dispatch table, indexed by opcode.
var handlers = [...]handler{
	wire.OpRead:   (*dataConn).handleRead,
	wire.OpLength: (*dataConn).handleLength,
	wire.OpPush:   (*dataConn).handlePush,
	wire.OpWrite:  (*dataConn).handleMutation,
	wire.OpAppend: (*dataConn).handleMutation,
	wire.OpApply:  (*dataConn).handleApply,
}

func newDataConn(s *Server, nc net.Conn) *dataConn {
	return &dataConn{s: s, nc: nc, br: bufio.NewReaderSize(nc, readBufSize), meta: make([]byte, 0, 4096), out: make([]byte, 0, 4096)}
}

// serve runs the request loop; first holds the 4 bytes sniff consumed.
func (c *dataConn) serve(first [4]byte) {
	defer c.stopAnswers()
	copy(c.hdr[:], first[:])
	have := len(first)
	for {
		if have == 0 && c.br.Buffered() == 0 {
			if !c.waitRequest() {
				return
			}
		}
		// A request has begun: its header, like the rest of it, must come
		// within IOTimeout (a client sending half a header and stopping
		// holds nothing longer).
		_ = c.nc.SetDeadline(time.Now().Add(c.s.opts.IOTimeout))
		if _, err := io.ReadFull(c.br, c.hdr[have:]); err != nil {
			if !errors.Is(err, io.EOF) && c.s.ctx.Err() == nil {
				c.s.log.Debug("data connection ended", "remote", c.nc.RemoteAddr(), "err", err)
			}
			return
		}
		have = 0
		h, err := wire.DecodeHeader(c.hdr[:])
		if errors.Is(err, wire.ErrUnknownOp) && h.CapLen <= wire.MaxCapability && h.MetaLen <= wire.MaxMeta && h.PayloadLen <= wire.MaxPayload {
			// The checksum vouches for the lengths: skip the frame and
			// answer, so a newer client can probe for opcodes.
			if err := c.discard(int64(h.CapLen) + int64(h.MetaLen) + int64(h.PayloadLen)); err != nil {
				return
			}
			if c.replyErr(&h, wire.StatusUnknownOp, "", "unknown opcode "+h.Op.String()) != nil {
				return
			}
			continue
		}
		if err != nil {
			c.warn("closing data connection: bad frame header", "reason", err)
			return
		}
		if h.Flags&wire.FlagResponse != 0 {
			c.warn("closing data connection: response frame sent as request", "op", h.Op)
			return
		}
		if c.refusePlain {
			c.s.logRefusal("refusing a plaintext data request: this chunkserver requires TLS on the data channel (-data-tls)", c.nc)
			if c.discard(int64(h.CapLen)+int64(h.MetaLen)+int64(h.PayloadLen)) == nil {
				_ = c.replyErr(&h, wire.StatusTLSRequired, "", "this chunkserver requires TLS on the data channel (-data-tls); plaintext request refused")
			}
			return
		}
		if _, err := io.ReadFull(c.br, c.capb[:h.CapLen]); err != nil {
			return
		}
		if cap(c.meta) < int(h.MetaLen) {
			c.meta = make([]byte, h.MetaLen)
		}
		meta := c.meta[:h.MetaLen]
		if _, err := io.ReadFull(c.br, meta); err != nil {
			return
		}
		if h.Op != wire.OpWrite && h.Op != wire.OpAppend {
			// Anything else sees the effects of the mutations before it.
			c.waitAnswers()
		}
		if err := handlers[h.Op](c, &h, meta); err != nil {
			if c.s.ctx.Err() == nil {
				c.warn("closing data connection", "op", h.Op, "reason", err)
			}
			return
		}
	}
}

// waitRequest waits, between requests, for the first byte of the next
// one: up to IdleTimeout after the last answer was sent. Mutations still
// queued for their answers are not idleness (the client is waiting for
// them): the wait starts again once they are answered. false means the
// connection is to be closed (idle for too long, or gone).
func (c *dataConn) waitRequest() bool {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
		_, err := c.br.Peek(1)
		if err == nil {
			return true
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			if !errors.Is(err, io.EOF) && c.s.ctx.Err() == nil {
				c.s.log.Debug("data connection ended", "remote", c.nc.RemoteAddr(), "err", err)
			}
			return false
		}
		if c.nQueued.Load() > 0 {
			c.waitAnswers()
			continue
		}
		c.s.idleClosed.Add(1)
		c.s.log.Debug("closing idle data connection", "remote", c.nc.RemoteAddr(), "idle", c.s.opts.IdleTimeout)
		return false
	}
}

// warn logs why a connection is closed for what its peer sent, at most
// once a second per remote host (connlimit.LogLimiter); the lines held
// back are counted (Server.SuppressedConnLogs) and the next line that gets
// through says how many.
func (c *dataConn) warn(msg string, args ...any) {
	host := connlimit.HostOf(c.nc.RemoteAddr())
	ok, suppressed := c.s.connLogs.Allow(host)
	if !ok {
		return
	}
	args = append(args, "remote", c.nc.RemoteAddr(), "suppressed", suppressed)
	c.s.log.Warn(msg, args...)
}

// discard reads and drops n bytes.
func (c *dataConn) discard(n int64) error {
	if n == 0 {
		return nil
	}
	_, err := c.br.Discard(int(n))
	return err
}

// reply sends a response header with metadata m (nil for none) announcing
// payloadLen bytes of payload, which the caller sends next. Queued
// mutations are answered first.
func (c *dataConn) reply(req *wire.Header, status wire.Status, m interface{ Append([]byte) []byte }, payloadLen int64) error {
	c.waitAnswers()
	h := wire.Header{Op: req.Op, Flags: wire.FlagResponse, RequestID: req.RequestID, Status: status, PayloadLen: uint32(payloadLen)}
	if m != nil {
		c.out = wire.AppendRequest(c.out[:0], &h, nil, m)
	} else {
		c.out = wire.AppendFrame(c.out[:0], &h, nil, nil)
	}
	_, err := c.nc.Write(c.out)
	return err
}

// replyErr answers with a non-OK status. replica names the failed replica
// when it is not this server.
func (c *dataConn) replyErr(req *wire.Header, status wire.Status, replica, msg string) error {
	return c.reply(req, status, &wire.ErrorResponse{Replica: replica, Message: msg}, 0)
}

// fail answers a request that is refused before its payload was read: the
// payload is drained first so the connection stays at a frame boundary.
func (c *dataConn) fail(req *wire.Header, status wire.Status, format string, args ...any) error {
	if err := c.discard(int64(req.PayloadLen)); err != nil {
		return err
	}
	msg := fmt.Sprintf(format, args...)
	c.s.log.Debug("request refused", "op", req.Op, "status", status, "msg", msg)
	return c.replyErr(req, status, "", msg)
}

// storeStatus maps a store error onto a wire status.
func storeStatus(err error) wire.Status {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return wire.StatusNoSuchChunk
	case errors.Is(err, store.ErrChunkFull):
		return wire.StatusChunkFull
	case errors.Is(err, store.ErrOutOfRange):
		return wire.StatusOutOfRange
	case errors.Is(err, store.ErrNoSpace):
		return wire.StatusNoSpace
	case errors.Is(err, store.ErrChecksum):
		return wire.StatusChecksum
	default:
		return wire.StatusInternal
	}
}

// queue hands m (submitted to its chunk's sequencer) to the answer writer,
// starting it on first use; it waits while maxQueued answers are pending.
func (c *dataConn) queue(m *mutation) {
	m.queued = true
	if c.answers == nil {
		c.answers = make(chan *mutation, maxQueued)
		c.writerDone = make(chan struct{})
		go c.writeAnswers() // stopped by stopAnswers when serve returns
	}
	c.queued.Add(1)
	c.nQueued.Add(1)
	c.answers <- m
}

// waitAnswers returns once every queued mutation was answered.
func (c *dataConn) waitAnswers() {
	if c.nQueued.Load() > 0 {
		c.queued.Wait()
	}
}

// stopAnswers ends the answer writer after it answered (or, on a broken
// connection, released) every queued mutation.
func (c *dataConn) stopAnswers() {
	if c.answers != nil {
		close(c.answers)
		<-c.writerDone
	}
}

// writeAnswers sends the answers of queued mutations in request order,
// as many in one write as have finished, and releases their data. After a
// failed write it only releases (serve sees the connection closed).
func (c *dataConn) writeAnswers() {
	defer close(c.writerDone)
	var next *mutation
	open, broken := true, false
	for open || next != nil {
		m := next
		next = nil
		if m == nil {
			if m, open = <-c.answers; !open {
				return
			}
		}
		<-m.wake
		out := m.appendAnswer(c.wout[:0])
		c.s.doneMutation(m)
		n := 1
	gather:
		for open {
			select {
			case m2, ok := <-c.answers:
				if !ok {
					open = false
					break gather
				}
				select {
				case <-m2.wake:
					out = m2.appendAnswer(out)
					c.s.doneMutation(m2)
					n++
				default:
					next = m2 // not finished: send what is ready first
					break gather
				}
			default:
				break gather
			}
		}
		c.wout = out
		if !broken {
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.IOTimeout))
			if _, err := c.nc.Write(out); err != nil {
				broken = true
				c.nc.Close() // serve's next read fails
			}
		}
		c.nQueued.Add(int32(-n))
		for range n {
			c.queued.Done()
		}
	}
}
