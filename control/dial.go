package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// DefaultCallTimeout is the deadline Dial's connections put on every call
// whose context carries none.
const DefaultCallTimeout = 10 * time.Second

// MaxMessageBytes caps every control-channel message in both directions by
// default: the control channel carries metadata only (a full chunk report of
// a large chunkserver is the biggest message, ~30 bytes per chunk).
const MaxMessageBytes = 64 << 20

// Keepalive defaults shared by Dial and ServerOptions: the client pings a
// connection idle for KeepaliveTime and drops it when the ping is not
// answered within KeepaliveTimeout; the server accepts pings that often.
const (
	KeepaliveTime    = 20 * time.Second
	KeepaliveTimeout = 10 * time.Second
)

// ErrBadAddress reports an empty or malformed dial address.
var ErrBadAddress = errors.New("control: bad address")

// DialOptions tunes Dial. The zero value is valid.
type DialOptions struct {
	// TLS enables TLS (mutual when it holds client certificates); nil = insecure.
	TLS *tls.Config
	// CallTimeout is the deadline added to calls without one; 0 = DefaultCallTimeout.
	CallTimeout time.Duration
	// MaxMessageBytes caps received and sent messages; 0 = MaxMessageBytes.
	MaxMessageBytes int
	// Extra are appended after the defaults (tests, interceptors).
	Extra []grpc.DialOption
}

// Dial returns a client connection to a control-channel server at addr
// (HOST:PORT). Like grpc.NewClient it does not wait for the connection: the
// first call connects (and fails with codes.Unavailable if it cannot).
func Dial(addr string, opts DialOptions) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, fmt.Errorf("dial %q: %w", addr, ErrBadAddress)
	}
	callTimeout := opts.CallTimeout
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	maxMsg := opts.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = MaxMessageBytes
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                KeepaliveTime,
			Timeout:             KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMsg),
			grpc.MaxCallSendMsgSize(maxMsg),
		),
		grpc.WithChainUnaryInterceptor(deadlineInterceptor(callTimeout)),
	}
	dopts = append(dopts, opts.Extra...)
	cc, err := grpc.NewClient("passthrough:///"+addr, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// deadlineInterceptor adds timeout to calls whose context has no deadline.
func deadlineInterceptor(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// ServerOptions tunes the options ServerOptions returns. The zero value is valid.
type ServerOptions struct {
	// TLS enables TLS on the server; nil = insecure.
	TLS *tls.Config
	// MaxMessageBytes caps received and sent messages; 0 = MaxMessageBytes.
	MaxMessageBytes int
}

// NewServerOptions returns grpc.ServerOptions matching Dial's client side:
// keepalive pings from clients are permitted (a server with gRPC's default
// policy would close connections pinged every KeepaliveTime), dead clients
// are detected, and messages are capped.
func NewServerOptions(opts ServerOptions) []grpc.ServerOption {
	maxMsg := opts.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = MaxMessageBytes
	}
	sopts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             KeepaliveTime / 2,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    2 * KeepaliveTime,
			Timeout: KeepaliveTimeout,
		}),
		grpc.MaxRecvMsgSize(maxMsg),
		grpc.MaxSendMsgSize(maxMsg),
	}
	if opts.TLS != nil {
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	return sopts
}

// CallContext returns ctx bounded by DefaultCallTimeout when it has no
// deadline yet; servers use it for the calls they make while handling one.
func CallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultCallTimeout)
}
