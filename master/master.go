package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/internal/connlimit"
	"github.com/gfs-go/gfs/internal/dirlock"
	"github.com/gfs-go/gfs/master/oplog"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("master: closed")

// Master is the GFS master: namespace, chunk table, leases, op log,
// re-replication and garbage collection, served over gRPC (controlpb.Master).
type Master struct {
	controlpb.UnimplementedMasterServer

	opts  Options
	log   *slog.Logger
	clock Clock
	oplog *oplog.Log
	// dirLock keeps every other process out of opts.Dir until Close.
	dirLock *dirlock.Lock
	locks   *lockTable
	srv     *grpc.Server
	keys    *capability.Keyring // signs chunk capabilities; shared with chunkservers

	mu            sync.RWMutex // guards the fields below
	st            *state
	nextHandle    uint64       // next handle to hand out; < st.ceiling when usable
	reserveTicket oplog.Ticket // durability of the current handle reservation
	servers       []*server
	byAddr        map[string]serverID
	leases        map[uint64]*lease
	granting      map[uint64]chan struct{}    // chunks whose lease/version change is in flight
	allocating    map[uint64]struct{}         // handles created on chunkservers, not yet in the table
	needCheck     map[uint64]struct{}         // chunks whose replica count may be off target
	copies        map[uint64]*copyJob         // re-replication copies in flight, by chunk
	floor         map[uint64]uint64           // highest version of a bump nobody confirmed, while above the chunk's
	unlisted      map[uint64][]serverID       // copies no member, kept while no member is alive (discardCopyLocked)
	keptBad       map[uint64][]serverID       // members reported bad, kept as the last live copy; listed as corrupt (settleKeptBadLocked)
	deferred      map[uint64][]deferredReport // reports that arrived during a lease change
	graceUntil    time.Time                   // no lease on an old chunk granted or extended before (restart)
	graceCeiling  uint64                      // chunks below it existed before this start ("old")
	settleUntil   time.Time                   // no re-replication before (servers still registering)
	sinceCkpt     int                         // records appended since the last checkpoint
	broken        error                       // op log failed: no more mutations

	connMu sync.Mutex // guards conns
	conns  map[string]*grpc.ClientConn

	kick      chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// lease is the master's view of a chunk's lease. expiry is conservative: it
// is counted from when the master received the primary's answer (or
// processed its extension), so it is never before the primary's own expiry.
type lease struct {
	primary   serverID
	version   uint64
	expiry    time.Time
	confirmed bool // the primary acknowledged; unconfirmed = grant outcome unknown
	// members are the replicas the lease was granted with (primary
	// included): the primary mutates only with all of them.
	members []serverID
	// noRegrant: the primary restarted or was declared dead since the grant;
	// it may have lost its lease state (and its mutation serials), so the
	// lease is never granted or extended to it again at this version.
	noRegrant bool
}

// New recovers the master's state from opts.Dir and starts its maintenance
// loop. Serve answers calls; Close stops everything.
func New(opts Options) (*Master, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	// Before the op log is read: a second master on a live directory would
	// recover it, cut off the first one's newest records as a "torn tail"
	// and append its own (issue 15: an acknowledged mkdir was lost).
	dl, err := dirlock.Acquire(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	st := newState()
	lg, err := oplog.Open(opts.Dir, oplog.Options{Logger: opts.Logger}, oplog.Replayer{
		Checkpoint: st.apply,
		Record:     func(_ uint64, rec []byte) error { return st.apply(rec) },
	})
	if err != nil {
		dl.Release()
		return nil, fmt.Errorf("master: recover %s: %w", opts.Dir, err)
	}
	now := opts.Clock.Now()
	m := &Master{
		opts:       opts,
		dirLock:    dl,
		log:        opts.Logger,
		clock:      opts.Clock,
		oplog:      lg,
		locks:      newLockTable(),
		st:         st,
		nextHandle: st.ceiling,
		byAddr:     make(map[string]serverID),
		leases:     make(map[uint64]*lease),
		granting:   make(map[uint64]chan struct{}),
		allocating: make(map[uint64]struct{}),
		needCheck:  make(map[uint64]struct{}),
		copies:     make(map[uint64]*copyJob),
		floor:      make(map[uint64]uint64),
		unlisted:   make(map[uint64][]serverID),
		keptBad:    make(map[uint64][]serverID),
		deferred:   make(map[uint64][]deferredReport),
		graceUntil: now.Add(opts.LeaseTTL),
		// Only chunks handed out by an earlier incarnation can hold a lease
		// this master does not know about.
		graceCeiling: st.ceiling,
		settleUntil:  now.Add(opts.DeadAfter),
		conns:        make(map[string]*grpc.ClientConn),
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}
	m.keys, err = capability.NewKeyring(capability.KeyringOptions{
		RotateEvery: opts.KeyRotateEvery, TTL: opts.CapabilityTTL, Now: opts.Clock.Now,
	})
	if err != nil {
		lg.Close()
		dl.Release()
		return nil, fmt.Errorf("master: %w", err)
	}
	for h, c := range st.chunks {
		if c.flags&chunkTrashed == 0 {
			m.needCheck[h] = struct{}{}
		}
	}
	sopts, err := m.serverOptions()
	if err != nil {
		lg.Close()
		dl.Release()
		return nil, err
	}
	sopts = append(sopts, grpc.WaitForHandlers(true))
	m.srv = grpc.NewServer(append(sopts, opts.ServerOptions...)...)
	controlpb.RegisterMasterServer(m.srv, m)
	m.log.Info("master recovered", "dir", opts.Dir, "files", len(st.nodes), "chunks", len(st.chunks), "seq", lg.Seq())
	m.wg.Add(1)
	go m.loop()
	return m, nil
}

// chunkserverMethods are the Master calls only chunkservers may make under
// TLS (their answers carry what only chunkservers may know).
var chunkserverMethods = []string{
	controlpb.Master_Register_FullMethodName,
	controlpb.Master_Heartbeat_FullMethodName,
	controlpb.Master_LocateChunk_FullMethodName,
}

// serverOptions loads the TLS configuration (opts.TLS) and returns the gRPC
// server options: TLS plus the role policy, or plaintext with a warning.
func (m *Master) serverOptions() ([]grpc.ServerOption, error) {
	if !m.opts.TLS.Enabled() {
		m.log.Warn("TLS NOT CONFIGURED: the control channel is plaintext and unauthenticated; " +
			"anyone who can reach this port can act as a client or a chunkserver (set -tls-cert, -tls-key, -tls-ca; see gfs cert)")
		return control.NewServerOptions(control.ServerOptions{}), nil
	}
	srvTLS, err := tlsconfig.Server(m.opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("master: %w", err)
	}
	if m.opts.Dial.TLS == nil {
		if m.opts.Dial.TLS, err = tlsconfig.Client(m.opts.TLS); err != nil {
			return nil, fmt.Errorf("master: %w", err)
		}
	}
	policy := tlsconfig.Policy{Methods: map[string][]tlsconfig.Role{}}
	for _, method := range chunkserverMethods {
		policy.Methods[method] = []tlsconfig.Role{tlsconfig.RoleChunkserver}
	}
	m.log.Info("control channel: mutual TLS", "cert", m.opts.TLS.Cert, "ca", m.opts.TLS.CA)
	return append(control.NewServerOptions(control.ServerOptions{TLS: srvTLS}), policy.ServerOptions()...), nil
}

// capabilityKeys returns the keyring's keys as chunkservers receive them.
func (m *Master) capabilityKeys() ([]*controlpb.CapabilityKey, error) {
	keys, err := m.keys.Keys()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "capability keys: %v", err)
	}
	out := make([]*controlpb.CapabilityKey, len(keys))
	for i, k := range keys {
		out[i] = &controlpb.CapabilityKey{Id: k.ID, Secret: k.Secret(), ExpiresUnixNano: k.Expires.UnixNano()}
	}
	return out, nil
}

// Serve answers control calls on lis until Close. It returns nil after Close.
func (m *Master) Serve(lis net.Listener) error {
	select {
	case <-m.stop:
		lis.Close()
		return ErrClosed
	default:
	}
	err := m.srv.Serve(connlimit.Wrap(lis, m.opts.MaxConnsPerHost, m.log))
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Close stops serving (waiting for running calls), stops the maintenance
// loop, closes connections to chunkservers and the op log.
func (m *Master) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		m.srv.Stop()
		m.wg.Wait()
		m.connMu.Lock()
		for _, cc := range m.conns {
			cc.Close()
		}
		m.conns = nil
		m.connMu.Unlock()
		m.closeErr = errors.Join(m.oplog.Close(), m.dirLock.Release())
	})
	return m.closeErr
}

var errBroken = status.Error(codes.Unavailable, "master: op log failed; restart the master")

// applyLocked applies rec to the state and appends it to the op log, in that
// order and both under m.mu (write), so the log order is the apply order.
// The caller waits on the ticket (without m.mu) before acknowledging.
func (m *Master) applyLocked(rec []byte) (oplog.Ticket, error) {
	if m.broken != nil {
		return oplog.Ticket{}, errBroken
	}
	if err := m.st.apply(rec); err != nil {
		return oplog.Ticket{}, err
	}
	t, err := m.oplog.Append(rec)
	if err != nil {
		// Applied but not logged: nothing more may be acknowledged.
		m.broken = err
		m.log.Error("op log append failed", "err", err)
		return oplog.Ticket{}, errBroken
	}
	m.sinceCkpt++
	if m.sinceCkpt >= m.opts.CheckpointEvery {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return t, nil
}

// waitDurable waits for t; on failure the master stops acknowledging.
func (m *Master) waitDurable(t oplog.Ticket) error {
	if err := t.Wait(); err != nil {
		m.mu.Lock()
		if m.broken == nil {
			m.broken = err
			m.log.Error("op log write failed", "err", err)
		}
		m.mu.Unlock()
		return errBroken
	}
	return nil
}

func (m *Master) nowMs() int64 { return m.clock.Now().UnixMilli() }

// loop runs maintenance every heartbeat interval and checkpoints when asked.
func (m *Master) loop() {
	defer m.wg.Done()
	t := time.NewTicker(m.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.maintain()
		case <-m.kick:
		}
		m.mu.RLock()
		due := m.sinceCkpt >= m.opts.CheckpointEvery && m.broken == nil
		m.mu.RUnlock()
		if due {
			if err := m.checkpoint(); err != nil {
				m.log.Error("checkpoint failed", "err", err)
			}
		}
	}
}

// checkpoint writes the state as of now aside and cuts the log (GFS 2.6.3).
// The snapshot is taken under m.mu so it is exactly the state after the
// last logged record.
func (m *Master) checkpoint() error {
	var recs [][]byte
	m.mu.Lock()
	ck, err := m.oplog.StartCheckpoint()
	if err != nil {
		m.mu.Unlock()
		return err
	}
	err = m.st.snapshot(func(r []byte) error { recs = append(recs, r); return nil })
	m.sinceCkpt = 0
	m.mu.Unlock()
	if err != nil {
		ck.Abort()
		return err
	}
	for _, r := range recs {
		if err := ck.Add(r); err != nil {
			ck.Abort()
			return err
		}
	}
	if err := ck.Commit(); err != nil {
		return err
	}
	m.log.Info("checkpoint written", "seq", ck.Seq, "records", len(recs))
	return nil
}

// chunkserver returns a client of the Chunkserver service at addr.
func (m *Master) chunkserver(addr string) (controlpb.ChunkserverClient, error) {
	m.connMu.Lock()
	defer m.connMu.Unlock()
	if m.conns == nil {
		return nil, ErrClosed
	}
	cc := m.conns[addr]
	if cc == nil {
		var err error
		cc, err = control.Dial(addr, m.opts.Dial)
		if err != nil {
			return nil, err
		}
		m.conns[addr] = cc
	}
	return controlpb.NewChunkserverClient(cc), nil
}

// reconnect makes the cached connection to addr, if any, reconnect at once
// instead of after its backoff, and waits (bounded by RPCTimeout) until it
// is ready.
func (m *Master) reconnect(ctx context.Context, addr string) {
	m.connMu.Lock()
	cc := m.conns[addr]
	m.connMu.Unlock()
	if cc == nil {
		return
	}
	cc.ResetConnectBackoff()
	cc.Connect()
	ctx, cancel := m.rpcContext(ctx)
	defer cancel()
	for st := cc.GetState(); st != connectivity.Ready && st != connectivity.Shutdown; st = cc.GetState() {
		if !cc.WaitForStateChange(ctx, st) {
			return
		}
		if cc.GetState() == connectivity.TransientFailure {
			cc.ResetConnectBackoff()
		}
	}
}

// rpcContext bounds a call to a chunkserver. It is detached from the
// client's context: a client giving up must not leave a version bump or a
// lease grant half done (that would drop healthy replicas).
func (m *Master) rpcContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.opts.RPCTimeout)
}
