package tlsconfig_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/tlsconfig"
)

// BenchmarkUnaryCall measures one control-channel call (gRPC health check,
// the smallest message) over an established connection, plaintext (the
// baseline) and mutual TLS 1.3, and the cost of a new TLS connection
// (handshake with client certificate) per call.
func BenchmarkUnaryCall(b *testing.B) {
	dir := b.TempDir()
	nodes, _ := tlsconfig.ParseNodes("master,client")
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: nodes}); err != nil {
		b.Fatal(err)
	}
	fs := func(n string) tlsconfig.Files {
		return tlsconfig.Files{Cert: filepath.Join(dir, n+".pem"), Key: filepath.Join(dir, n+"-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	}
	srvTLS, _ := tlsconfig.Server(fs("master"))
	cliTLS, _ := tlsconfig.Client(fs("client"))
	serve := func(b *testing.B, opts control.ServerOptions) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := grpc.NewServer(control.NewServerOptions(opts)...)
		healthpb.RegisterHealthServer(srv, health.NewServer())
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(lis) }()
		b.Cleanup(func() { srv.Stop(); <-done })
		return lis.Addr().String()
	}
	call := func(b *testing.B, addr string, dopts control.DialOptions) {
		cc, err := control.Dial(addr, dopts)
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		srv  control.ServerOptions
		dial control.DialOptions
	}{{"plaintext", control.ServerOptions{}, control.DialOptions{}}, {"tls", control.ServerOptions{TLS: srvTLS}, control.DialOptions{TLS: cliTLS}}} {
		addr := serve(b, c.srv)
		b.Run(c.name, func(b *testing.B) {
			cc, err := control.Dial(addr, c.dial)
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			hc := healthpb.NewHealthClient(cc)
			ctx := context.Background()
			for b.Loop() {
				if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"-new-connection", func(b *testing.B) {
			for b.Loop() {
				call(b, addr, c.dial)
			}
		})
	}
}
