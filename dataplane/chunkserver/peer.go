package chunkserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/wire"
	"github.com/gfs-go/gfs/internal/connstate"
)

// peerConn is a pooled data connection to another chunkserver (chain
// forwarding and apply rounds). It is at a frame boundary whenever pooled.
type peerConn struct {
	addr string
	nc   net.Conn
	hdr  [wire.HeaderSize]byte
	buf  []byte
	stop func() bool

	idleSince time.Time // when it was pooled
	reused    bool      // taken from the pool (it may have gone stale there)
	answered  bool      // a byte of the current reply arrived
}

// peerStaleCheckAfter: a connection pooled at least this long is checked
// (connstate.PeerClosed) before reuse: the peer closes connections idle
// past its IdleTimeout. A variable for tests.
var peerStaleCheckAfter = 100 * time.Millisecond

// retryable says a request that failed on pc with err may be sent again
// on a new connection (peerPool.dial): pc came from the pool, no byte of
// the reply arrived and the peer closed or reset it, most likely as idle
// before reading the request.
func (pc *peerConn) retryable(err error) bool {
	return pc.reused && !pc.answered && connstate.IsPeerClose(err)
}

// peerPool pools connections to other chunkservers.
type peerPool struct {
	ioTimeout time.Duration
	tls       *tls.Config // encrypt connections (DataTLS); nil = plaintext
	reqID     atomic.Uint64

	mu     sync.Mutex
	idle   map[string][]*peerConn // guarded by mu
	closed bool                   // guarded by mu
}

func newPeerPool(ioTimeout time.Duration, tlsCfg *tls.Config) *peerPool {
	return &peerPool{ioTimeout: ioTimeout, tls: tlsCfg, idle: make(map[string][]*peerConn)}
}

var errPoolClosed = errors.New("chunkserver closing")

// get returns a connection to addr armed with a deadline (IOTimeout,
// bounded by ctx) that ctx cancellation also trips.
func (p *peerPool) get(ctx context.Context, addr string) (*peerConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		cs := p.idle[addr]
		if len(cs) == 0 {
			p.mu.Unlock()
			return p.dial(ctx, addr)
		}
		pc := cs[len(cs)-1]
		p.idle[addr] = cs[:len(cs)-1]
		p.mu.Unlock()
		if time.Since(pc.idleSince) >= peerStaleCheckAfter && connstate.PeerClosed(pc.nc) {
			pc.nc.Close() // closed by the peer while pooled
			continue
		}
		pc.reused, pc.answered = true, false
		p.arm(ctx, pc)
		return pc, nil
	}
}

// dial opens a new connection to addr, armed like get's.
func (p *peerPool) dial(ctx context.Context, addr string) (*peerConn, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errPoolClosed
	}
	d := net.Dialer{Timeout: min(p.ioTimeout, 5*time.Second)}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if p.tls != nil {
		if nc, err = dataclient.DialTLS(ctx, nc, addr, p.tls, min(p.ioTimeout, 5*time.Second)); err != nil {
			return nil, err
		}
	}
	pc := &peerConn{addr: addr, nc: nc, buf: make([]byte, 0, 4096)}
	p.arm(ctx, pc)
	return pc, nil
}

// arm sets pc's deadline (IOTimeout, bounded by ctx) and makes ctx
// cancellation trip it.
func (p *peerPool) arm(ctx context.Context, pc *peerConn) {
	dl := time.Now().Add(p.ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = pc.nc.SetDeadline(dl)
	nc := pc.nc
	pc.stop = context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
}

// put pools a connection whose last response was read completely.
func (p *peerPool) put(pc *peerConn) {
	if !pc.stop() {
		pc.nc.Close() // the context fired: the deadline is in the past
		return
	}
	_ = pc.nc.SetDeadline(time.Time{})
	pc.idleSince = time.Now()
	p.mu.Lock()
	if !p.closed && len(p.idle[pc.addr]) < 64 {
		p.idle[pc.addr] = append(p.idle[pc.addr], pc)
		pc = nil
	}
	p.mu.Unlock()
	if pc != nil {
		pc.nc.Close()
	}
}

// discard closes a connection in an unknown state.
func (p *peerPool) discard(pc *peerConn) {
	pc.stop()
	pc.nc.Close()
}

func (p *peerPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, cs := range idle {
		for _, pc := range cs {
			pc.nc.Close()
		}
	}
}

// peerReply is a peer's answer: OK, or a status with the error metadata.
type peerReply struct {
	status wire.Status
	err    wire.ErrorResponse
}

// readReply reads the (payload-free) response to request (op, id). An
// error means the connection is unusable.
func (pc *peerConn) readReply(op wire.Op, id uint64, r *peerReply) error {
	n, err := io.ReadFull(pc.nc, pc.hdr[:])
	if n > 0 {
		pc.answered = true
	}
	if err != nil {
		return err
	}
	h, err := wire.DecodeHeader(pc.hdr[:])
	if err != nil {
		return err
	}
	if h.Op != op || h.RequestID != id || h.Flags&wire.FlagResponse == 0 || h.PayloadLen != 0 || h.CapLen != 0 {
		return fmt.Errorf("unexpected response %v/%d (want %v/%d)", h.Op, h.RequestID, op, id)
	}
	if cap(pc.buf) < int(h.MetaLen) {
		pc.buf = make([]byte, h.MetaLen)
	}
	meta := pc.buf[:h.MetaLen]
	if _, err := io.ReadFull(pc.nc, meta); err != nil {
		return err
	}
	r.status = h.Status
	r.err = wire.ErrorResponse{}
	if h.Status != wire.StatusOK {
		if err := r.err.Decode(meta); err != nil {
			return fmt.Errorf("malformed error response: %w", err)
		}
	}
	return nil
}
