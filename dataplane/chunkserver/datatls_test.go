package chunkserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// tlsTestDir writes a CA and certificates for master, cs0..cs2 and client.
func tlsTestDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	nodes, err := tlsconfig.ParseNodes("master,cs0,cs1,cs2,client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tlsClientConfig(t *testing.T, dir, node string) *tls.Config {
	t.Helper()
	cfg, err := tlsconfig.Client(tlsconfig.FilesInDir(dir, node))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer is a bytes.Buffer safe for the server's logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tapProxy forwards connections to target and records every byte in
// both directions.
type tapProxy struct {
	lis    net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   bytes.Buffer
	conns  []net.Conn
}

func newTapProxy(t *testing.T, target string) *tapProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tapProxy{lis: lis, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(out, in)
			go p.pipe(in, out)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *tapProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.seen.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *tapProxy) addr() string { return p.lis.Addr().String() }

func (p *tapProxy) saw(pattern []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), pattern)
}

func (p *tapProxy) close() {
	p.lis.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestDataTLSEncrypts writes and reads a chunk on three -data-tls
// chunkservers through a proxy that records the wire: the chain forwards
// (secondaries refuse plaintext, so their copies prove the chunkservers'
// own connections are TLS), the data reads back, and the recorded bytes
// never contain it; the same exchange with plaintext servers does (the
// check can fail).
func TestDataTLSEncrypts(t *testing.T) {
	noLeaks(t)
	dir := tlsTestDir(t)
	pattern := bytes.Repeat([]byte("confidential payload 0123456789 "), 4096) // 128 KiB: pushed, not inline
	for _, dataTLS := range []bool{true, false} {
		var servers []*Server
		for i := 0; i < 3; i++ {
			servers = append(servers, startServer(t, func(o *Options) {
				if dataTLS {
					o.TLS = tlsconfig.FilesInDir(dir, []string{"cs0", "cs1", "cs2"}[i])
					o.DataTLS = true
					o.Capabilities = CapabilitiesOff // capabilities are tested elsewhere
				}
			}))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var dopts control.DialOptions
		var copts dataclient.Options
		if dataTLS {
			dopts.TLS = tlsClientConfig(t, dir, "master")
			copts.TLS = tlsClientConfig(t, dir, "client")
		}
		const h = 42
		var secondaries []string
		for i, s := range servers {
			cc, err := control.Dial(s.Addr(), dopts)
			if err != nil {
				t.Fatal(err)
			}
			c := controlpb.NewChunkserverClient(cc)
			if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1}); err != nil {
				t.Fatalf("data TLS %v: create chunk: %v", dataTLS, err)
			}
			if i > 0 {
				secondaries = append(secondaries, s.Addr())
			}
			cc.Close()
		}
		cc, err := control.Dial(servers[0].Addr(), dopts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := controlpb.NewChunkserverClient(cc).GrantLease(ctx, grantLease(h, 1, 60000, secondaries...)); err != nil {
			t.Fatal(err)
		}
		cc.Close()

		proxy := newTapProxy(t, servers[0].Addr())
		dc := dataclient.New(copts)
		chain := append([]string{proxy.addr()}, secondaries...)
		if err := dc.Write(ctx, chain, proxy.addr(), h, 1, 0, pattern, false); err != nil {
			t.Fatalf("data TLS %v: write through the proxy: %v", dataTLS, err)
		}
		for _, a := range append([]string{proxy.addr()}, secondaries...) {
			got := make([]byte, len(pattern))
			if n, err := dc.Read(ctx, a, h, 1, 0, got); (err != nil && err != io.EOF) || !bytes.Equal(got[:n], pattern) {
				t.Fatalf("data TLS %v: read back from %s: %d bytes, %v", dataTLS, a, n, err)
			}
		}
		dc.Close()
		if saw := proxy.saw(pattern[:64]); saw == dataTLS {
			t.Fatalf("data TLS %v: payload seen in the clear on the wire: %v", dataTLS, saw)
		}
		proxy.close()
		cancel()
		for _, s := range servers {
			s.Close()
		}
	}
}

// TestDataTLSMismatch: a plaintext request to a -data-tls chunkserver is
// answered ErrDataTLSRequired and logged with its reason; an encrypted
// connection to a chunkserver without TLS fails with ErrNoDataTLS; an
// encrypted one with a certificate of another CA is refused.
func TestDataTLSMismatch(t *testing.T) {
	noLeaks(t)
	dir := tlsTestDir(t)
	var logs syncBuffer
	secure := startServer(t, func(o *Options) {
		o.TLS = tlsconfig.FilesInDir(dir, "cs0")
		o.DataTLS = true
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	plain := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	_, err := dc.Read(ctx, secure.Addr(), 1, 1, 0, make([]byte, 8))
	if !errors.Is(err, dataclient.ErrDataTLSRequired) || !strings.Contains(err.Error(), "-data-tls") {
		t.Fatalf("plaintext read from a -data-tls chunkserver: %v, want ErrDataTLSRequired", err)
	}
	if err := dc.Write(ctx, []string{secure.Addr()}, secure.Addr(), 1, 1, 0, bytes.Repeat([]byte("x"), 200<<10), false); !errors.Is(err, dataclient.ErrDataTLSRequired) {
		t.Fatalf("plaintext push to a -data-tls chunkserver: %v, want ErrDataTLSRequired", err)
	}
	if !strings.Contains(logs.String(), "refusing a plaintext data request") {
		t.Fatalf("refusal not logged:\n%s", logs.String())
	}

	tc := dataclient.New(dataclient.Options{TLS: tlsClientConfig(t, dir, "client")})
	defer tc.Close()
	if _, err := tc.Read(ctx, plain.Addr(), 1, 1, 0, make([]byte, 8)); !errors.Is(err, dataclient.ErrNoDataTLS) {
		t.Fatalf("encrypted read from a chunkserver without TLS: %v, want ErrNoDataTLS", err)
	}
	if _, err := tc.Read(ctx, secure.Addr(), 1, 1, 0, make([]byte, 8)); errors.Is(err, dataclient.ErrDataTLSRequired) || errors.Is(err, dataclient.ErrNoDataTLS) {
		t.Fatalf("encrypted read from a -data-tls chunkserver: %v", err)
	}
	other := tlsTestDir(t) // another CA
	oc := dataclient.New(dataclient.Options{TLS: tlsClientConfig(t, other, "client")})
	defer oc.Close()
	if _, err := oc.Read(ctx, secure.Addr(), 1, 1, 0, make([]byte, 8)); err == nil || errors.Is(err, dataclient.ErrNoSuchChunk) {
		t.Fatalf("read with a certificate of another CA: %v, want a handshake failure", err)
	}
}
