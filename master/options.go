package master

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/tlsconfig"
)

// Clock is the master's source of time for leases, liveness and garbage
// collection. Tests inject a fake one; nil means real time.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configures a Master. Zero values mean the documented defaults.
type Options struct {
	// Dir holds the op log and checkpoints. Required.
	Dir string
	// ChunkSize is the maximum chunk size; 0 = 64 MiB.
	ChunkSize int64
	// Replication is the default replica count of new files; 0 = 3.
	Replication int
	// LeaseTTL is the lease period; 0 = 60 s.
	LeaseTTL time.Duration
	// HeartbeatInterval is told to chunkservers and paces the master's
	// maintenance loop; 0 = 1 s.
	HeartbeatInterval time.Duration
	// DeadAfter declares a chunkserver dead without a heartbeat for this
	// long; 0 = 10 x HeartbeatInterval.
	DeadAfter time.Duration
	// GCGrace is how long deleted files stay hidden before their chunks are
	// reclaimed; 0 = 1 h.
	GCGrace time.Duration
	// CheckpointEvery is the number of op log records between checkpoints;
	// 0 = 100000.
	CheckpointEvery int
	// MaxCopiesPerServer bounds re-replication copies in flight per
	// chunkserver (as source or target); 0 = 2.
	MaxCopiesPerServer int
	// CopyTimeout is how long a copy command may take before the master
	// gives up on it and may pick another target (a failed copy is not
	// reported); 0 = 10 heartbeat intervals plus a chunk at 20 MB/s.
	CopyTimeout time.Duration
	// RPCTimeout bounds each call the master makes to a chunkserver;
	// 0 = 5 s.
	RPCTimeout time.Duration
	// RebalanceThreshold: the rebalancer moves chunks off a chunkserver whose
	// used fraction exceeds the least used one's by more than this;
	// 0 = 0.10; negative disables the rebalancer.
	RebalanceThreshold float64
	// Dial configures connections to chunkservers (TLS). Dial.TLS nil with
	// TLS set = the client configuration loaded from TLS.
	Dial control.DialOptions
	// ServerOptions are appended to the master's gRPC server options (extra
	// interceptors; TLS comes from the TLS field); nil = none.
	ServerOptions []grpc.ServerOption
	// TLS names the master's certificate, key and the cluster CA (-tls-cert,
	// -tls-key, -tls-ca). When set, the control channel is mutual TLS 1.3:
	// callers need a certificate of the CA, and Register and Heartbeat are
	// answered to chunkserver certificates only. Zero = plaintext (New logs
	// a warning).
	TLS tlsconfig.Files
	// CapabilityTTL is the lifetime of the chunk capabilities Lookup and
	// copy commands carry; 0 = 10 min.
	CapabilityTTL time.Duration
	// KeyRotateEvery is how long a capability key signs before the next
	// takes over; 0 = 10 min.
	KeyRotateEvery time.Duration
	// MaxConnsPerHost caps the open connections from one remote host;
	// 0 = connlimit.DefaultPerHost (4096), negative = no cap. Connections
	// over it are closed at once, with a logged reason.
	MaxConnsPerHost int
	// Clock is the time source; nil = real time.
	Clock Clock
	// Logger receives structured logs; nil = discard.
	Logger *slog.Logger
}

// ErrBadOptions reports invalid Options.
var ErrBadOptions = errors.New("master: bad options")

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("%w: Dir is required", ErrBadOptions)
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 64 << 20
	}
	if o.ChunkSize < 0 || o.ChunkSize > 1<<40 {
		return o, fmt.Errorf("%w: ChunkSize %d", ErrBadOptions, o.ChunkSize)
	}
	if o.Replication == 0 {
		o.Replication = 3
	}
	if o.Replication < 1 || o.Replication > maxReplication {
		return o, fmt.Errorf("%w: Replication %d not in 1..%d", ErrBadOptions, o.Replication, maxReplication)
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 60 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = time.Second
	}
	if o.DeadAfter == 0 {
		o.DeadAfter = 10 * o.HeartbeatInterval
	}
	if o.GCGrace == 0 {
		o.GCGrace = time.Hour
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 100000
	}
	if o.MaxCopiesPerServer == 0 {
		o.MaxCopiesPerServer = 2
	}
	if o.CopyTimeout == 0 {
		o.CopyTimeout = 10*o.HeartbeatInterval + time.Duration(float64(o.ChunkSize)/20e6*float64(time.Second))
	}
	if o.RPCTimeout == 0 {
		o.RPCTimeout = 5 * time.Second
	}
	if o.RebalanceThreshold == 0 {
		o.RebalanceThreshold = 0.10
	}
	if o.LeaseTTL < 0 || o.HeartbeatInterval < 0 || o.DeadAfter < 0 || o.GCGrace < 0 ||
		o.CheckpointEvery < 0 || o.MaxCopiesPerServer < 0 || o.CopyTimeout < 0 || o.RPCTimeout < 0 {
		return o, fmt.Errorf("%w: negative duration or count", ErrBadOptions)
	}
	if o.CapabilityTTL < 0 || o.KeyRotateEvery < 0 {
		return o, fmt.Errorf("%w: negative CapabilityTTL or KeyRotateEvery", ErrBadOptions)
	}
	if err := o.TLS.Check(); err != nil {
		return o, fmt.Errorf("%w: %v", ErrBadOptions, err)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
