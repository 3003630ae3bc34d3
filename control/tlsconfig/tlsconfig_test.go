package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/tlsconfig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// genCerts creates a CA and certificates for master, cs0 and client in a
// temporary directory.
func genCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	nodes, err := tlsconfig.ParseNodes("master,cs0,client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func files(dir, node string) tlsconfig.Files {
	return tlsconfig.Files{
		Cert: filepath.Join(dir, tlsconfig.CertFile(node)),
		Key:  filepath.Join(dir, tlsconfig.KeyFile(node)),
		CA:   filepath.Join(dir, tlsconfig.CAFile),
	}
}

// startServer serves the gRPC health service under TLS with extra options
// and returns its address.
func startServer(t *testing.T, dir string, extra ...grpc.ServerOption) string {
	t.Helper()
	cfg, err := tlsconfig.Server(files(dir, "master"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(control.NewServerOptions(control.ServerOptions{TLS: cfg}), extra...)...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// check calls the health service at addr with client TLS cfg (nil = plaintext).
func check(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	cc, err := control.Dial(addr, control.DialOptions{TLS: cfg, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	return err
}

func TestMutualTLS(t *testing.T) {
	dir := genCerts(t)
	addr := startServer(t, dir)

	good, err := tlsconfig.Client(files(dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t, addr, good); err != nil {
		t.Fatalf("client with a CA-signed certificate refused: %v", err)
	}

	// No certificate at all, but trusting the server: the handshake fails.
	noCert := good.Clone()
	noCert.Certificates = nil
	if err := check(t, addr, noCert); err == nil {
		t.Fatal("client without a certificate got through")
	}
	// Plaintext client.
	if err := check(t, addr, nil); err == nil {
		t.Fatal("plaintext client got through")
	}
	// A certificate from another CA.
	other := genCerts(t)
	foreign, err := tlsconfig.Client(files(other, "client"))
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = good.RootCAs // trusts the server, offers a foreign cert
	if err := check(t, addr, foreign); err == nil {
		t.Fatal("client with a certificate of another CA got through")
	}
	// The client refuses a server of another CA.
	if err := check(t, addr, mustClient(t, files(other, "client"))); err == nil {
		t.Fatal("client accepted a server of another CA")
	}
	// TLS 1.2 is not spoken.
	old := good.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if err := check(t, addr, old); err == nil {
		t.Fatal("TLS 1.2 client got through")
	}
}

func mustClient(t *testing.T, f tlsconfig.Files) *tls.Config {
	t.Helper()
	c, err := tlsconfig.Client(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostVerified: a client dialling a host name not in the server's
// certificate refuses it.
func TestHostVerified(t *testing.T) {
	dir := t.TempDir()
	nodes, _ := tlsconfig.ParseNodes("master,client")
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: nodes, Hosts: []string{"example.invalid"}}); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, dir)
	err := check(t, addr, mustClient(t, files(dir, "client")))
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("server certificate without 127.0.0.1 accepted or unclear error: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	dir := genCerts(t)
	policy := tlsconfig.Policy{Methods: map[string][]tlsconfig.Role{
		"/grpc.health.v1.Health/Check": {tlsconfig.RoleChunkserver},
	}}
	var seen tlsconfig.Peer
	addr := startServer(t, dir, append(policy.ServerOptions(), grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			seen, _ = tlsconfig.PeerOf(ctx)
			return h(ctx, req)
		}))...)
	err := check(t, addr, mustClient(t, files(dir, "client")))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("client role calling a chunkserver method: %v, want PermissionDenied", err)
	}
	if err := check(t, addr, mustClient(t, files(dir, "cs0"))); err != nil {
		t.Fatalf("chunkserver refused: %v", err)
	}
	if seen.Name != "cs0" || seen.Role != tlsconfig.RoleChunkserver {
		t.Fatalf("peer seen as %+v", seen)
	}
}

// TestPolicyWithoutTLS: a policy on a plaintext server refuses everything.
func TestPolicyWithoutTLS(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(tlsconfig.Policy{}.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	if err := check(t, lis.Addr().String(), nil); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("plaintext call under a policy: %v, want Unauthenticated", err)
	}
}

func TestFilesErrors(t *testing.T) {
	dir := genCerts(t)
	f := files(dir, "client")
	if cfg, err := tlsconfig.Server(tlsconfig.Files{}); cfg != nil || err != nil {
		t.Fatalf("no files: %v %v, want nil nil", cfg, err)
	}
	if _, err := tlsconfig.Client(tlsconfig.Files{Cert: f.Cert, Key: f.Key}); !errors.Is(err, tlsconfig.ErrIncomplete) {
		t.Fatalf("no CA: %v", err)
	}
	if _, err := tlsconfig.Server(tlsconfig.Files{Cert: f.Cert, Key: filepath.Join(dir, tlsconfig.KeyFile("master")), CA: f.CA}); err == nil {
		t.Fatal("mismatched key accepted")
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := tlsconfig.Server(tlsconfig.Files{Cert: f.Cert, Key: f.Key, CA: bad}); !errors.Is(err, tlsconfig.ErrBadCA) {
		t.Fatalf("bad CA: %v", err)
	}
	// Errors about key files never carry their contents.
	keyPEM, _ := os.ReadFile(f.Key)
	_, err := tlsconfig.Server(tlsconfig.Files{Cert: f.Key, Key: f.Key, CA: f.CA})
	if err == nil || strings.Contains(err.Error(), string(keyPEM[30:60])) {
		t.Fatalf("key as certificate: %v", err)
	}
}

func TestGenerateCerts(t *testing.T) {
	dir := t.TempDir()
	nodes, err := tlsconfig.ParseNodes("master, cs1,chunkserver2,alice,bob:chunkserver")
	if err != nil {
		t.Fatal(err)
	}
	wantRoles := []tlsconfig.Role{tlsconfig.RoleMaster, tlsconfig.RoleChunkserver, tlsconfig.RoleChunkserver, tlsconfig.RoleClient, tlsconfig.RoleChunkserver}
	written, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: nodes, Hosts: []string{"127.0.0.1", "node.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 2+2*len(nodes) {
		t.Fatalf("wrote %v", written)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, tlsconfig.CAFile))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for i, n := range nodes {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, tlsconfig.CertFile(n.Name)), filepath.Join(dir, tlsconfig.KeyFile(n.Name)))
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(pair.Certificate[0])
		if tlsconfig.RoleOf(cert) != wantRoles[i] || cert.Subject.CommonName != n.Name {
			t.Errorf("%s: role %q cn %q", n.Name, tlsconfig.RoleOf(cert), cert.Subject.CommonName)
		}
		for _, host := range []string{"127.0.0.1", "node.example", n.Name} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("%s for %s: %v", n.Name, host, err)
			}
		}
		st, _ := os.Stat(filepath.Join(dir, tlsconfig.KeyFile(n.Name)))
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s key mode %v", n.Name, st.Mode())
		}
	}
	// Adding a node reuses the CA; an existing node is refused and nothing changes.
	more, _ := tlsconfig.ParseNodes("cs9")
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: more}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, tlsconfig.CAFile)); string(again) != string(caPEM) {
		t.Fatal("CA replaced when adding a node")
	}
	before, _ := os.ReadDir(dir)
	dup, _ := tlsconfig.ParseNodes("cs10,master")
	if _, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: dir, Nodes: dup}); !errors.Is(err, tlsconfig.ErrExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("refused generation wrote files: %d -> %d", len(before), len(after))
	}
}

func TestParseNodesErrors(t *testing.T) {
	for _, s := range []string{"", ",", "a/b", "ca", "x:admin", "a,a", "../x", "x-key", strings.Repeat("n", 64)} {
		if _, err := tlsconfig.ParseNodes(s); !errors.Is(err, tlsconfig.ErrBadNode) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

// TestCredentials serves and dials with the gRPC credentials helpers
// directly (no control package).
func TestCredentials(t *testing.T) {
	dir := genCerts(t)
	if c, err := tlsconfig.ServerCredentials(tlsconfig.Files{}); c != nil || err != nil {
		t.Fatalf("no files: %v %v", c, err)
	}
	if _, err := tlsconfig.ClientCredentials(tlsconfig.Files{CA: "x"}); !errors.Is(err, tlsconfig.ErrIncomplete) {
		t.Fatalf("partial files: %v", err)
	}
	sc, err := tlsconfig.ServerCredentials(files(dir, "master"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(sc))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	defer func() { srv.Stop(); <-done }()
	cc, err := tlsconfig.ClientCredentials(files(dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(cc))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("call with client credentials: %v", err)
	}
}
