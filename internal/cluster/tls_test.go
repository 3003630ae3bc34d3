package cluster_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/cluster"
)

// TestTLSCluster runs a cluster with mutual TLS on the control channel: a
// client with a certificate of the cluster's CA works (also across a master
// restart), one without is refused by the master, a client certificate
// cannot call the chunkserver-only master calls nor the chunkservers'
// service.
func TestTLSCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := opts(t.TempDir())
	o.TLSDir = filepath.Join(t.TempDir(), "certs")
	c, err := cluster.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ClientTLS() == nil {
		t.Fatal("no client TLS configuration")
	}

	cl, err := client.Dial(ctx, c.MasterAddr(), client.Options{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := bytes.Repeat([]byte("secure"), 300000) // ~1.7 chunks
	if err := cl.Create(ctx, "/f", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := cl.Open(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if n, err := f.ReadAtContext(ctx, got, 0); n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, err %v", n, err)
	}

	// Plaintext client: the master does not answer it.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	if plain, err := client.Dial(pctx, c.MasterAddr(), client.Options{}); err == nil {
		plain.Close()
		t.Fatal("plaintext client connected to a TLS master")
	}
	pcancel()

	// A client certificate may not act as a chunkserver towards the master
	// nor as the master towards a chunkserver.
	cc, err := control.Dial(c.MasterAddr(), control.DialOptions{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlpb.NewMasterClient(cc).Register(ctx, &controlpb.RegisterRequest{Addr: "127.0.0.1:1"})
	cc.Close()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Register with a client certificate: %v, want PermissionDenied", err)
	}
	cc, err = control.Dial(c.ChunkserverAddrs()[0], control.DialOptions{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlpb.NewChunkserverClient(cc).CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: 1 << 40, Version: 1})
	cc.Close()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateChunk with a client certificate: %v, want PermissionDenied", err)
	}
	// The master's certificate may.
	mtls, err := tlsconfig.Client(c.TLSFiles("master"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err = control.Dial(c.ChunkserverAddrs()[0], control.DialOptions{TLS: mtls})
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlpb.NewChunkserverClient(cc).RevokeLease(ctx, &controlpb.RevokeLeaseRequest{Handle: 1 << 40})
	cc.Close()
	if status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.Unavailable {
		t.Fatalf("RevokeLease with the master's certificate: %v", err)
	}

	// The chunkservers re-register with a restarted master over TLS.
	if err := c.RestartMaster(); err != nil {
		t.Fatal(err)
	}
	if n, err := f.ReadAtContext(ctx, got, 0); n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("after master restart: read back %d bytes, err %v", n, err)
	}
}
