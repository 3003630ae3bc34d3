package chunkserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
	"github.com/gfs-go/gfs/internal/connlimit"
)

// SendMode selects how read payload goes from the chunk file to the socket.
type SendMode int

// Send modes.
const (
	// SendDefault is the mode measured fastest on the reference machine:
	// SendCopy on Linux (see docs/protocol.md).
	SendDefault SendMode = iota
	// SendFile uses sendfile(2): no user-space copy of payload.
	SendFile
	// SendCopy uses pread(2) into a pooled buffer and write(2).
	SendCopy
)

// Options configures a Server. Zero values mean the documented defaults.
type Options struct {
	// MasterAddr is the master's HOST:PORT; empty runs standalone (no
	// registration or heartbeats: tests drive the gRPC service directly).
	MasterAddr string
	// Addr is the listen HOST:PORT; port 0 picks a free port.
	Addr string
	// Dir holds the chunk store.
	Dir string
	// Rack is reported to the master for placement; optional.
	Rack string
	// HeartbeatInterval between heartbeats; 0 = 1 s (the master's Register
	// answer overrides it).
	HeartbeatInterval time.Duration
	// PushBufferBytes caps buffered pushed data; 0 = 256 MiB.
	PushBufferBytes int64
	// PushTimeout evicts pushed data never written; 0 = 60 s.
	PushTimeout time.Duration
	// PushWait is how long a push over the buffer cap waits for space
	// before being refused with StatusBusy; 0 = 5 s.
	PushWait time.Duration
	// LeaseMargin is subtracted from every lease; 0 = 2 s. Capped to a
	// tenth of the lease.
	LeaseMargin time.Duration
	// IOTimeout bounds reading one request and sending one answer, and
	// calls to other chunkservers; 0 = 30 s.
	IOTimeout time.Duration
	// IdleTimeout closes a data connection on which no request began for
	// this long after the last answer (clients and peers redial); 0 = 2 min.
	// It applies between requests only, never inside one (a long streaming
	// transfer is bounded by IOTimeout per read and write instead).
	IdleTimeout time.Duration
	// MaxConnsPerHost caps the open connections (data and control) from
	// one remote host; 0 = connlimit.DefaultPerHost (4096), negative = no
	// cap. Connections over it are closed at once, with a logged reason.
	MaxConnsPerHost int
	// SendMode for read payload; 0 = SendDefault.
	SendMode SendMode
	// TLS names the server's certificate, key and the cluster CA (-tls-cert,
	// -tls-key, -tls-ca). When set, the control channel (this server's gRPC
	// service and its calls to the master) is mutual TLS 1.3 and the gRPC
	// service answers master certificates only. Zero = plaintext (New logs a
	// warning). With TLS the data port also accepts encrypted data
	// connections from clients that ask (docs/security.md).
	TLS tlsconfig.Files
	// DataTLS requires TLS on the data channel (-data-tls): plaintext data
	// requests are answered wire.StatusTLSRequired and the connection
	// closed, and this server's own data connections (chain forwarding,
	// re-replication copies) are encrypted. Needs TLS.
	DataTLS bool
	// ReplicaCheckInterval paces the replica check, which compares chunks
	// across replicas: every interval the server takes its next chunk (in
	// handle order, round and round) and, when it is the chunk's
	// lowest-address live replica and no lease is held, compares the
	// stored block checksums of every live replica (BlockChecksums) and
	// reports those diverging from the chunk's good copy to the master
	// (package divergence), which drops them and copies the good one over
	// them. A divergence is reported only when seen twice, an interval
	// apart. 0 = off (gfs chunkserver -replica-check defaults to 1s);
	// needs MasterAddr.
	ReplicaCheckInterval time.Duration
	// Capabilities says whether data-channel requests must carry a valid
	// master-signed capability; 0 = CapabilitiesAuto (required under TLS).
	Capabilities CapabilityMode
	// Store configures the chunk store (its Logger defaults to Logger).
	// Store.OnCorrupt, when set, also sees the chunks New finds torn by a
	// crash while it opens the store, before New returns.
	Store store.Options
	// Logger receives the server's logs; nil discards.
	Logger *slog.Logger

	// testPacketHook, when set (tests in this package), sees every packet
	// of pushed data as it arrives: push id, offset in the push, length.
	testPacketHook func(id wire.PushID, off, n int64)
	// testCapabilityClock, when set, is the capability verifier's clock.
	testCapabilityClock func() time.Time
	// testRoundHook, when set, is called by the sequencer as each round
	// starts, with the number of mutations it holds.
	testRoundHook func(h store.Handle, mutations int)
}

// Server is one chunkserver. Create it with New, run it with Serve, stop
// it with Close.
type Server struct {
	opts        Options
	log         *slog.Logger
	store       *store.Store
	lis         net.Listener
	addr        string
	chunkSize   int64
	leaseMargin time.Duration

	grpc    *grpc.Server
	tls     bool                // the control channel is TLS (sniff routes TLS handshakes to gRPC)
	dialTLS control.DialOptions // calls to the master

	dataTLS *tls.Config // server side of encrypted data connections; nil without TLS
	refusalCounters
	replicaCheckCounters

	verifier    *capability.Verifier // keys from the master's Register/Heartbeat answers
	requireCaps bool                 // data requests need a valid capability
	grpcLis     *chanListener
	pushes      *pushBuffer
	leases      leaseTable
	peers       *peerPool
	dc          *dataclient.Client // copies from other replicas
	seqs        seqTable
	tracker     changeTracker
	copying     copyGuard // chunks being copied here (heartbeat commands and CopyChunk)

	connLogs   *connlimit.LogLimiter // warnings about what a peer sent, per host
	idleClosed atomic.Uint64         // data connections closed for IdleTimeout

	activeMutations atomic.Int32
	queuedBytes     atomic.Int64  // inline data of mutations queued for answer writers
	hbKick          chan struct{} // buffered(1): send a heartbeat now
	sendMode        atomic.Int32  // SendMode; benchmarks switch it between runs

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the server starts

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // open data connections; guarded by mu
	serving bool                  // Serve was called; guarded by mu
	closing bool                  // guarded by mu

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when Close starts

	dirs    *dirWatch
	lost    chan struct{} // closed by watchDir when the data directory is lost
	lostErr error         // why; written before lost is closed
}

// New opens the store and binds the listener. Nothing is served before Serve.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("chunkserver: Options.Dir is required")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Second
	}
	if opts.PushBufferBytes <= 0 {
		opts.PushBufferBytes = 256 << 20
	}
	if opts.PushTimeout <= 0 {
		opts.PushTimeout = 60 * time.Second
	}
	if opts.PushWait <= 0 {
		opts.PushWait = 5 * time.Second
	}
	if opts.LeaseMargin <= 0 {
		opts.LeaseMargin = 2 * time.Second
	}
	if opts.IOTimeout <= 0 {
		opts.IOTimeout = 30 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.ReplicaCheckInterval < 0 {
		return nil, fmt.Errorf("chunkserver: negative ReplicaCheckInterval %v", opts.ReplicaCheckInterval)
	}
	if opts.SendMode == SendDefault {
		opts.SendMode = defaultSendMode
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := opts.TLS.Check(); err != nil {
		return nil, fmt.Errorf("chunkserver: %w", err)
	}
	srvTLS, err := tlsconfig.Server(opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("chunkserver: %w", err)
	}
	cliTLS, err := tlsconfig.Client(opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("chunkserver: %w", err)
	}
	if opts.DataTLS && srvTLS == nil {
		return nil, fmt.Errorf("chunkserver: DataTLS needs TLS certificates (-tls-dir or -tls-cert, -tls-key, -tls-ca)")
	}
	if opts.Store.Logger == nil {
		opts.Store.Logger = log
	}
	s := &Server{opts: opts, log: log, tls: srvTLS != nil, dialTLS: control.DialOptions{TLS: cliTLS}, conns: make(map[net.Conn]struct{}), done: make(chan struct{}), hbKick: make(chan struct{}, 1)}
	s.connLogs = connlimit.NewLogLimiter(connlimit.LogEvery)
	s.verifier = capability.NewVerifier(capability.VerifierOptions{Now: opts.testCapabilityClock})
	switch opts.Capabilities {
	case CapabilitiesAuto:
		s.requireCaps = s.tls
	case CapabilitiesRequired:
		s.requireCaps = true
	case CapabilitiesOff:
	default:
		return nil, fmt.Errorf("chunkserver: unknown Options.Capabilities %d", opts.Capabilities)
	}
	// The store calls OnCorrupt from inside Open too (chunks torn by a
	// crash are verified there), before Open returns: everything the hook
	// touches exists before the store is opened (issue 15: a torn chunk
	// made every restart panic on the tracker's nil maps).
	s.tracker.init()
	userOnCorrupt := opts.Store.OnCorrupt
	opts.Store.OnCorrupt = func(h store.Handle, blocks []int) {
		s.tracker.changed(h)
		if userOnCorrupt != nil {
			userOnCorrupt(h, blocks)
		}
	}
	st, err := store.Open(opts.Dir, opts.Store)
	if err != nil {
		return nil, fmt.Errorf("chunkserver: open store: %w", err)
	}
	dirs, err := newDirWatch(opts.Dir)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("chunkserver: %w", err)
	}
	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("chunkserver: listen %s: %w", opts.Addr, err)
	}
	s.dirs, s.lost = dirs, make(chan struct{})
	s.store = st
	s.addr = lis.Addr().String()
	s.chunkSize = st.ChunkSize()
	s.sendMode.Store(int32(opts.SendMode))
	s.leaseMargin = opts.LeaseMargin
	s.log = log.With("chunkserver", s.addr)
	s.lis = connlimit.Wrap(lis, opts.MaxConnsPerHost, s.log)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pushes = newPushBuffer(opts.PushBufferBytes, opts.PushTimeout)
	var peerTLS *tls.Config // this server's own data connections
	if srvTLS != nil {
		s.dataTLS = srvTLS.Clone()
		s.dataTLS.NextProtos = []string{dataTLSProto}
		if opts.DataTLS {
			peerTLS = cliTLS
		}
	}
	s.peers = newPeerPool(opts.IOTimeout, peerTLS)
	s.dc = dataclient.New(dataclient.Options{Logger: s.log, IOTimeout: opts.IOTimeout, TLS: peerTLS})
	s.leases.init()
	s.seqs.init()
	s.grpcLis = newChanListener(lis.Addr())
	if s.tls {
		// Only the master calls this service (chunk creation, versions,
		// leases), but for the checksums other chunkservers' replica
		// checks compare (never clients: they read through capabilities).
		policy := tlsconfig.Policy{Default: []tlsconfig.Role{tlsconfig.RoleMaster}, Methods: map[string][]tlsconfig.Role{
			controlpb.Chunkserver_BlockChecksums_FullMethodName: {tlsconfig.RoleMaster, tlsconfig.RoleChunkserver},
		}}
		s.grpc = grpc.NewServer(append(control.NewServerOptions(control.ServerOptions{TLS: srvTLS}), policy.ServerOptions()...)...)
	} else {
		s.log.Warn("TLS NOT CONFIGURED: the control channel is plaintext and unauthenticated; "+
			"anyone who can reach this port can create chunks, set versions and grant leases (set -tls-cert, -tls-key, -tls-ca; see gfs cert)",
			"capabilities_required", s.requireCaps)
		s.grpc = grpc.NewServer(control.NewServerOptions(control.ServerOptions{})...)
	}
	controlpb.RegisterChunkserverServer(s.grpc, &grpcService{s: s})
	return s, nil
}

// Addr returns the actual listen address HOST:PORT.
func (s *Server) Addr() string { return s.addr }

// SuppressedConnLogs returns how many warnings about closed malformed data
// connections were held back by the once-a-second-per-host limit.
func (s *Server) SuppressedConnLogs() uint64 { return s.connLogs.Dropped() }

// IdleClosed returns how many data connections were closed for being idle
// longer than Options.IdleTimeout.
func (s *Server) IdleClosed() uint64 { return s.idleClosed.Load() }

// Store returns the server's chunk store (tests and tools inspect it).
func (s *Server) Store() *store.Store { return s.store }

// Serve accepts connections, registers with the master and heartbeats
// until ctx ends or Close is called; it then closes the server and returns
// nil (or the error that stopped it). When the data directory disappears
// or is replaced while serving, Serve closes the server and returns an
// error wrapping ErrDataDirLost (fail-stop: the master re-replicates).
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving || s.closing {
		s.mu.Unlock()
		return errors.New("chunkserver: Serve called twice or after Close")
	}
	s.serving = true
	s.wg.Add(4)
	s.mu.Unlock()
	go func() { defer s.wg.Done(); _ = s.grpc.Serve(s.grpcLis) }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() { defer s.wg.Done(); s.pushes.evictLoop(s.ctx) }()
	go func() { defer s.wg.Done(); s.watchDir(s.ctx) }()
	if s.opts.MasterAddr != "" {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.heartbeatLoop(s.ctx) }()
		if s.opts.ReplicaCheckInterval > 0 {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.replicaCheckLoop(s.ctx) }()
		}
	}
	s.log.Info("chunkserver serving", "dir", s.opts.Dir, "master", s.opts.MasterAddr, "tls", s.tls, "data_tls", s.opts.DataTLS, "capabilities", s.requireCaps)
	if s.tls {
		s.logDataTLS()
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	case <-s.lost:
		return errors.Join(s.lostErr, s.Close())
	}
	return s.Close()
}

// Close stops accepting, ends every connection and goroutine the server
// started, waits for them and closes the store. Safe to call repeatedly.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		close(s.done)
		s.cancel()
		s.lis.Close()
		s.grpcLis.Close()
		s.grpc.Stop()
		s.wg.Wait()
		s.peers.close()
		s.dc.Close()
		s.pushes.releaseAll()
		s.closeErr = s.store.Close()
	})
	return s.closeErr
}

func (s *Server) acceptLoop() {
	for {
		nc, err := s.lis.Accept()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("accept failed; listener stops", "err", err)
			}
			return
		}
		if !s.track(nc) {
			nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sniff(nc)
		}()
	}
}

// track registers a data connection so Close can end it; false once
// closing.
func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// http2Preface opens every HTTP/2 (gRPC) connection.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// tlsHandshake opens every TLS connection: a handshake record (0x16) of
// TLS 1.x (0x03); the data protocol's header never starts with it.
var tlsHandshake = []byte{0x16, 0x03}

// sniff reads the first 4 bytes of a connection: the HTTP/2 preface's (or,
// when the control channel is TLS, a TLS handshake's) go to the gRPC server,
// wire.TLSMagic opens an encrypted data connection, anything else is served
// as the (plaintext) data protocol, which DataTLS refuses.
func (s *Server) sniff(nc net.Conn) {
	var first [4]byte
	_ = nc.SetReadDeadline(time.Now().Add(s.opts.IOTimeout))
	if _, err := io.ReadFull(nc, first[:]); err != nil {
		s.untrack(nc)
		nc.Close()
		return
	}
	if first == wire.TLSMagic {
		_ = nc.SetReadDeadline(time.Time{})
		defer s.untrack(nc)
		defer nc.Close()
		s.serveDataTLS(nc)
		return
	}
	if bytes.Equal(first[:], http2Preface[:4]) || (s.tls && bytes.Equal(first[:2], tlsHandshake)) {
		_ = nc.SetReadDeadline(time.Time{})
		s.untrack(nc) // gRPC owns it now; grpc.Stop closes it
		if !s.grpcLis.deliver(&prefixConn{Conn: nc, prefix: first[:]}) {
			nc.Close()
		}
		return
	}
	defer s.untrack(nc)
	defer nc.Close()
	c := newDataConn(s, nc)
	c.refusePlain = s.opts.DataTLS
	c.serve(first)
}

// chanListener is the net.Listener gRPC serves: connections come from
// sniff instead of accept(2).
type chanListener struct {
	addr      net.Addr
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// prefixConn replays the bytes sniff consumed before the rest of the stream.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
