package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// Options tunes a Client. The zero value is valid: every zero field means the
// documented default.
type Options struct {
	// Logger receives retries and failovers at debug level; nil discards.
	Logger *slog.Logger
	// CallTimeout bounds each control call without a caller deadline;
	// 0 = control.DefaultCallTimeout.
	CallTimeout time.Duration
	// DialTimeout bounds connecting to a chunkserver; 0 = 5 s.
	DialTimeout time.Duration
	// IOTimeout bounds a data-channel request that makes no progress; 0 = 30 s.
	IOTimeout time.Duration
	// RetryTimeout is how long a read or mutation keeps retrying through
	// lease changes and chunkserver failures before giving up (the caller's
	// context can end it sooner); 0 = 2 min. It must cover the master's
	// lease TTL for writes to survive the death of a primary.
	RetryTimeout time.Duration
	// LocationTTL is how long cached chunk locations are used for reads
	// without asking the master again; 0 = 1 min. Errors invalidate earlier.
	LocationTTL time.Duration
	// ReadaheadBytes is how many bytes a streaming Reader keeps in flight
	// beyond the segment being consumed, in whole segments (at least one,
	// at most 64); 0 = 16 MiB. A Reader starts with one segment in flight
	// and doubles that as segments are consumed, up to this bound.
	ReadaheadBytes int64
	// ReadSegmentBytes is the size of one background read of a streaming
	// Reader (capped at the chunk size: a segment never spans chunks);
	// 0 = 4 MiB.
	ReadSegmentBytes int64
	// SyncWrites makes chunkservers fdatasync mutated data before
	// acknowledging it (survives power loss, not only process crashes).
	SyncWrites bool
	// ID names this client in record ids and data pushes; 0 = random.
	ID uint64
	// TLS is the control-channel client configuration (with the client's
	// certificate: see control/tlsconfig.Client); nil = plaintext.
	TLS *tls.Config
	// DataTLS encrypts the data channel too, with TLS's certificate (the
	// chunkservers must have TLS; those running -data-tls refuse plaintext
	// data connections). Costs the zero-copy send path (docs/security.md).
	DataTLS bool
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = control.DefaultCallTimeout
	}
	if o.RetryTimeout <= 0 {
		o.RetryTimeout = 2 * time.Minute
	}
	if o.LocationTTL <= 0 {
		o.LocationTTL = time.Minute
	}
	if o.ReadaheadBytes <= 0 {
		o.ReadaheadBytes = 16 << 20
	}
	if o.ReadSegmentBytes <= 0 {
		o.ReadSegmentBytes = 4 << 20
	}
	for o.ID == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.ID = binary.LittleEndian.Uint64(b[:])
	}
	return o
}

// Client is a connection to one GFS cluster. It is safe for concurrent use.
type Client struct {
	opts   Options
	log    *slog.Logger
	cc     *grpc.ClientConn
	master controlpb.MasterClient
	data   *dataclient.Client
	local  map[string]bool // IP addresses of this host, for replica distance
	seq    atomic.Uint64   // last record sequence number used
	closed atomic.Bool

	chunkSize atomic.Int64 // learnt from the first Lookup; 0 until then

	mu    sync.Mutex
	files map[string]*fileLocations // location cache by path; guarded by mu
}

// Dial connects to the master at masterAddr (HOST:PORT) and checks that it
// answers. The returned client must be closed.
func Dial(ctx context.Context, masterAddr string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if masterAddr == "" {
		return nil, fmt.Errorf("dial master: %w: empty address", ErrBadArgument)
	}
	if _, _, err := net.SplitHostPort(masterAddr); err != nil {
		return nil, fmt.Errorf("dial master %q: %w: %v", masterAddr, ErrBadArgument, err)
	}
	if opts.DataTLS && opts.TLS == nil {
		return nil, fmt.Errorf("dial master %s: %w: DataTLS without TLS", masterAddr, ErrBadArgument)
	}
	var dataTLS *tls.Config
	if opts.DataTLS {
		dataTLS = opts.TLS
	}
	cc, err := control.Dial(masterAddr, control.DialOptions{CallTimeout: opts.CallTimeout, TLS: opts.TLS})
	if err != nil {
		return nil, fmt.Errorf("dial master %s: %w", masterAddr, err)
	}
	c := &Client{
		opts:   opts,
		log:    opts.Logger,
		cc:     cc,
		master: controlpb.NewMasterClient(cc),
		data: dataclient.New(dataclient.Options{
			Logger:      opts.Logger,
			DialTimeout: opts.DialTimeout,
			IOTimeout:   opts.IOTimeout,
			ClientID:    opts.ID,
			TLS:         dataTLS,
		}),
		local: localAddrs(),
		files: make(map[string]*fileLocations),
	}
	// The gRPC connection is lazy: make one call so that a wrong address
	// fails here, not at the first operation. Any answer from the master
	// (even an error code) proves it is there.
	cctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
	defer cancel()
	_, err = c.master.Stat(cctx, &controlpb.StatRequest{Path: "/"})
	if err != nil && control.Code(err) == controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED {
		c.Close()
		return nil, tlsMismatch(ctx, masterAddr, opts.TLS != nil, fmt.Errorf("dial master %s: %w", masterAddr, err))
	}
	return c, nil
}

// tlsMismatch explains a failed first call when the master and this
// client disagree about TLS: a plaintext client of a TLS master sees the
// connection closed ("error reading server preface: EOF"), a TLS client
// of a plaintext one "first record does not look like a TLS handshake".
// Only unreachable-looking failures are probed (control.ProbeTLS).
func tlsMismatch(ctx context.Context, addr string, useTLS bool, err error) error {
	if st, ok := status.FromError(errors.Unwrap(err)); !ok || st.Code() != codes.Unavailable {
		return err
	}
	speaksTLS, perr := control.ProbeTLS(ctx, addr)
	if perr != nil || speaksTLS == useTLS {
		return err
	}
	return &TLSMismatchError{Addr: addr, ServerTLS: speaksTLS, Err: err}
}

// TLSMismatchError reports a master that speaks TLS to a client without
// (ServerTLS) or plaintext to a client with TLS. It matches ErrTLSRequired
// or ErrNotTLS.
type TLSMismatchError struct {
	Addr      string
	ServerTLS bool
	Err       error // the failed call
}

// Error says which side lacks TLS.
func (e *TLSMismatchError) Error() string {
	if e.ServerTLS {
		return fmt.Sprintf("master %s requires TLS (this client has no certificate)", e.Addr)
	}
	return fmt.Sprintf("master %s does not use TLS (it runs -insecure; this client has a certificate)", e.Addr)
}

// Unwrap returns the sentinel and the failed call's error.
func (e *TLSMismatchError) Unwrap() []error {
	if e.ServerTLS {
		return []error{ErrTLSRequired, e.Err}
	}
	return []error{ErrNotTLS, e.Err}
}

// Close releases the client's connections. Calls in progress fail.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.data.Close()
	return errors.Join(err, c.cc.Close())
}

// ID returns the client's id (the writer id of the records it appends).
func (c *Client) ID() uint64 { return c.opts.ID }

func (c *Client) checkOpen() error {
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// localAddrs lists the IP addresses of this host's interfaces.
func localAddrs() map[string]bool {
	m := map[string]bool{"localhost": true}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return m
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			m[ipn.IP.String()] = true
		}
	}
	return m
}
