package dataclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/wire"
	"github.com/gfs-go/gfs/internal/connstate"
)

// Options tunes a Client. The zero value is valid.
type Options struct {
	// Logger receives debug logs; nil discards.
	Logger *slog.Logger
	// DialTimeout bounds connecting to a chunkserver; 0 = 5 s.
	DialTimeout time.Duration
	// IOTimeout bounds one request (send and answer) without the context
	// saying less; 0 = 30 s.
	IOTimeout time.Duration
	// ClientID names this client in push ids; 0 = random per Client. Only
	// for push ids: it is not a chunk id.
	ClientID uint64
	// InlineBytes: mutations up to this size carry their data inside the
	// write/append request instead of a separate push round; 0 = 64 KiB,
	// < 0 = always push.
	InlineBytes int
	// MaxIdlePerAddr caps pooled idle connections per chunkserver; 0 = 64.
	MaxIdlePerAddr int
	// WritePieceBytes: pushed writes larger than this are split into
	// write mutations of this size, pipelined (the next piece is pushed
	// while the primary applies the current one); 0 = 1 MiB, < 0 = never
	// split.
	WritePieceBytes int
	// TLS encrypts every connection with TLS 1.3 (mutual: it must hold
	// this node's certificate, see control/tlsconfig.Client); the server
	// is verified against the dialled host. nil = plaintext.
	TLS *tls.Config
}

// Client talks the data channel to chunkservers. Safe for concurrent use.
type Client struct {
	log         *slog.Logger
	dialTimeout time.Duration
	ioTimeout   time.Duration
	clientID    uint64
	inline      int
	maxIdle     int
	piece       int // WritePieceBytes; math.MaxInt when never split
	tls         *tls.Config

	seq   atomic.Uint64 // push sequence numbers
	reqID atomic.Uint64

	mu     sync.Mutex
	idle   map[string][]*conn // guarded by mu
	closed bool               // guarded by mu
}

// New returns a Client with opts.
func New(opts Options) *Client {
	c := &Client{
		log:         opts.Logger,
		dialTimeout: opts.DialTimeout,
		ioTimeout:   opts.IOTimeout,
		clientID:    opts.ClientID,
		inline:      opts.InlineBytes,
		maxIdle:     opts.MaxIdlePerAddr,
		piece:       opts.WritePieceBytes,
		tls:         opts.TLS,
		idle:        make(map[string][]*conn),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.dialTimeout <= 0 {
		c.dialTimeout = 5 * time.Second
	}
	if c.ioTimeout <= 0 {
		c.ioTimeout = 30 * time.Second
	}
	for c.clientID == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.clientID = binary.LittleEndian.Uint64(b[:])
	}
	if c.inline == 0 {
		c.inline = 64 << 10
	}
	if c.maxIdle <= 0 {
		c.maxIdle = 64
	}
	switch {
	case c.piece == 0:
		c.piece = 1 << 20
	case c.piece < 0:
		c.piece = math.MaxInt
	}
	return c
}

// ClientID returns the id this client puts in its push ids.
func (c *Client) ClientID() uint64 { return c.clientID }

// Close closes all idle connections; requests in flight finish or fail on
// their own and their connections are closed instead of pooled.
func (c *Client) Close() error {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.closed = true
	c.mu.Unlock()
	for _, cs := range idle {
		for _, cn := range cs {
			cn.nc.Close()
		}
	}
	return nil
}

// conn is one pooled connection with its scratch buffers.
type conn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader // reads of nc: a response's header and metadata in one read(2)
	hdr  [wire.HeaderSize]byte
	buf  []byte // request frames and response metadata
	blk  []byte // one block of scratch for partial blocks of reads
	dig  *xxhash.Digest
	rr   wire.ReadResponse

	idleSince time.Time // when it was pooled
	reused    bool      // taken from the pool (it may have gone stale there)
	answered  bool      // a byte of the current response arrived
	// closing: the server closes the connection after its last answer
	// (StatusTLSRequired); put closes it instead of pooling it.
	closing bool
}

// staleCheckAfter: a connection pooled at least this long is checked
// (connstate.PeerClosed) before reuse. Servers close idle connections
// (chunkserver.Options.IdleTimeout); a connection reused at once, as on
// every busy path, skips the system call. A variable for tests.
var staleCheckAfter = 100 * time.Millisecond

// retryStale says whether a request that failed on cn with err is to be
// sent again on a fresh connection: cn came from the pool, not a byte of
// the answer arrived and the failure is the connection's (the server most
// likely closed it as idle before reading the request). A request is
// retried at most once; writes, pushes and reads are idempotent and
// appends are at-least-once anyway.
func retryStale(ctx context.Context, cn *conn, err error) bool {
	return cn.reused && !cn.answered && ctx.Err() == nil && connstate.IsPeerClose(err)
}

// get returns a pooled connection to addr that is not known to be stale,
// or a new one.
func (c *Client) get(ctx context.Context, addr string) (*conn, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		cs := c.idle[addr]
		if len(cs) == 0 {
			c.mu.Unlock()
			return c.dial(ctx, addr)
		}
		cn := cs[len(cs)-1]
		c.idle[addr] = cs[:len(cs)-1]
		c.mu.Unlock()
		if time.Since(cn.idleSince) >= staleCheckAfter && connstate.PeerClosed(cn.nc) {
			cn.nc.Close() // closed by the server while pooled
			continue
		}
		cn.reused, cn.answered = true, false
		return cn, nil
	}
}

// dial opens a new connection to addr.
func (c *Client) dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: c.dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, cerr)
		}
		return nil, fmt.Errorf("dial %s: %w: %w", addr, ErrUnavailable, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if c.tls != nil {
		if nc, err = DialTLS(ctx, nc, addr, c.tls, c.dialTimeout); err != nil {
			return nil, err
		}
	}
	return &conn{addr: addr, nc: nc, br: bufio.NewReaderSize(nc, connReadBuf), buf: make([]byte, 0, 4096), dig: xxhash.New()}, nil
}

// DialTLS turns a fresh data connection nc to addr into a TLS one: it
// sends wire.TLSMagic and runs the TLS handshake (verifying the server
// against addr's host), within timeout. On failure nc is closed and the
// error wraps ErrNoDataTLS when the server answered something that is not
// TLS (it runs without TLS), else ErrUnavailable. Chunkservers use it for
// their own data connections too.
func DialTLS(ctx context.Context, nc net.Conn, addr string, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial %s: %w: %v", addr, ErrUnavailable, err)
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"gfs-data"}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if _, err := nc.Write(wire.TLSMagic[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("dial %s: %w: %v", addr, ErrUnavailable, err)
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("%s: TLS handshake on the data channel: %w (%v)", addr, ErrNoDataTLS, err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, cerr)
		}
		return nil, fmt.Errorf("%s: TLS handshake on the data channel: %w: %v", addr, ErrUnavailable, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return tc, nil
}

// connReadBuf is a connection's read buffer; payload reads larger than it
// go straight into the caller's memory.
const connReadBuf = 8 << 10

// put returns a healthy connection (at a frame boundary) to the pool.
func (c *Client) put(cn *conn) {
	_ = cn.nc.SetDeadline(time.Time{})
	cn.idleSince = time.Now()
	c.mu.Lock()
	if !c.closed && !cn.closing && len(c.idle[cn.addr]) < c.maxIdle {
		c.idle[cn.addr] = append(c.idle[cn.addr], cn)
		cn = nil
	}
	c.mu.Unlock()
	if cn != nil {
		cn.nc.Close()
	}
}

// start arms the connection's deadline from ctx and IOTimeout, and makes
// ctx cancellation unblock its I/O. The returned stop must be called.
func (c *Client) start(ctx context.Context, cn *conn) (stop func() bool) {
	dl := time.Now().Add(c.ioTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = cn.nc.SetDeadline(dl)
	return context.AfterFunc(ctx, func() { _ = cn.nc.SetDeadline(time.Unix(1, 0)) })
}

// ioErr turns an I/O failure on cn into an error, preferring the
// context's error when it caused the failure.
func ioErr(ctx context.Context, cn *conn, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s %s: %w", what, cn.addr, cerr)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		// The connection deadline (= the context's) fired first.
		return fmt.Errorf("%s %s: %w", what, cn.addr, context.DeadlineExceeded)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s %s: connection closed by peer: %w: %w", what, cn.addr, ErrUnavailable, err)
	}
	return fmt.Errorf("%s %s: %w: %w", what, cn.addr, ErrUnavailable, err)
}

// readResponse reads a response header for request (op, id) and its
// metadata into cn.buf. A non-OK status is returned as an error after the
// error metadata was consumed (the connection stays usable; payload of
// error responses is always empty). fatal says the connection must close.
func (cn *conn) readResponse(op wire.Op, id uint64) (h wire.Header, meta []byte, fatal bool, err error) {
	n, err := io.ReadFull(cn.br, cn.hdr[:])
	if n > 0 {
		cn.answered = true
	}
	if err != nil {
		return h, nil, true, err
	}
	h, err = wire.DecodeHeader(cn.hdr[:])
	if err != nil {
		return h, nil, true, fmt.Errorf("%w: response header from %s: %w", ErrProtocol, cn.addr, err)
	}
	if h.Op != op || h.RequestID != id || h.Flags&wire.FlagResponse == 0 || h.CapLen != 0 {
		return h, nil, true, fmt.Errorf("%w: response %v/%d from %s does not match request %v/%d", ErrProtocol, h.Op, h.RequestID, cn.addr, op, id)
	}
	if cap(cn.buf) < int(h.MetaLen) {
		cn.buf = make([]byte, h.MetaLen)
	}
	meta = cn.buf[:h.MetaLen]
	if _, err := io.ReadFull(cn.br, meta); err != nil {
		return h, nil, true, err
	}
	if h.Status != wire.StatusOK {
		var e wire.ErrorResponse
		if h.PayloadLen != 0 || e.Decode(meta) != nil {
			return h, nil, true, fmt.Errorf("%w: malformed error response from %s", ErrProtocol, cn.addr)
		}
		cn.closing = cn.closing || h.Status == wire.StatusTLSRequired
		return h, nil, false, responseError(cn.addr, h.Status, &e)
	}
	return h, meta, false, nil
}

type appender interface{ Append([]byte) []byte }

// roundTrip sends a request with metadata m and payload (may be nil) and
// reads the OK response's metadata into out (nil when none is expected).
// Used for everything but reads, whose responses carry payload.
func (c *Client) roundTrip(ctx context.Context, addr string, op wire.Op, flags uint16, m appender, payload []byte, out interface{ Decode([]byte) error }) error {
	tok := capability.FromContext(ctx)
	if len(tok) > wire.MaxCapability {
		return fmt.Errorf("%s: capability of %d bytes: %w", op, len(tok), ErrBadRequest)
	}
	cn, err := c.get(ctx, addr)
	if err != nil {
		return err
	}
	retry, err := c.roundTripOn(ctx, cn, op, flags, m, tok, payload, out)
	if retry {
		c.log.Debug("pooled connection went stale; sending again on a new one", "addr", addr, "op", op, "err", err)
		if cn, err = c.dial(ctx, addr); err != nil {
			return err
		}
		_, err = c.roundTripOn(ctx, cn, op, flags, m, tok, payload, out)
	}
	return err
}

// roundTripOn is one attempt of roundTrip on cn, which it pools again or
// closes. retry says the request may be sent again on a fresh connection
// (retryStale); err is then the failure on cn.
func (c *Client) roundTripOn(ctx context.Context, cn *conn, op wire.Op, flags uint16, m appender, tok, payload []byte, out interface{ Decode([]byte) error }) (retry bool, err error) {
	addr := cn.addr
	stop := c.start(ctx, cn)
	defer stop()
	id := c.reqID.Add(1)
	h := wire.Header{Op: op, Flags: flags, RequestID: id, PayloadLen: uint32(len(payload))}
	cn.buf = wire.AppendRequest(cn.buf[:0], &h, tok, m)
	bufs := net.Buffers{cn.buf}
	if len(payload) > 0 {
		bufs = append(bufs, payload)
	}
	if _, werr := bufs.WriteTo(cn.nc); werr != nil {
		// The server may have refused the request before reading all of
		// it (busy, too large): its answer explains better than EPIPE.
		_ = cn.nc.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, _, rerr := cn.readResponse(op, id); rerr != nil && !isIOError(rerr) {
			cn.nc.Close()
			return false, rerr
		}
		cn.nc.Close()
		return retryStale(ctx, cn, werr), ioErr(ctx, cn, op.String(), werr)
	}
	_, meta, fatal, err := cn.readResponse(op, id)
	if fatal {
		cn.nc.Close()
		if errors.Is(err, ErrProtocol) {
			return false, err
		}
		return retryStale(ctx, cn, err), ioErr(ctx, cn, op.String(), err)
	}
	if err == nil && out != nil {
		if derr := out.Decode(meta); derr != nil {
			cn.nc.Close()
			return false, fmt.Errorf("%w: %v response from %s: %w", ErrProtocol, op, addr, derr)
		}
	}
	c.put(cn)
	return false, err
}

// isIOError reports whether err came from the connection rather than from
// a decoded response.
func isIOError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
