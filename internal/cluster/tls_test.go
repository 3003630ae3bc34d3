package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/dataclient"
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
	o.Chunkservers, o.Replication = 4, 3 // a spare for re-replication
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

	// Under TLS the chunkservers require capabilities: a data request
	// without one is refused, and the client above never was.
	for i := range c.ChunkserverAddrs() {
		if !c.Chunkserver(i).RequiresCapabilities() {
			t.Fatalf("chunkserver %d does not require capabilities under TLS", i)
		}
		if r := c.Chunkserver(i).Refusals(); r.Total() != 0 {
			t.Fatalf("chunkserver %d refused the client: %+v", i, r)
		}
	}
	locs, err := cl.Chunks(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	if _, err := dc.Read(ctx, locs[0].Replicas[0], locs[0].Handle, 0, 0, make([]byte, 10)); !errors.Is(err, dataclient.ErrDenied) {
		t.Fatalf("read without a capability: %v, want ErrDenied", err)
	}

	// Re-replication copies carry the master's copy capability (the source
	// enforces capabilities): stop a replica of chunk 0 and wait for the
	// master to copy a chunk it held to a server that did not hold it.
	victim := -1
	for i, a := range c.ChunkserverAddrs() {
		if a == locs[0].Replicas[0] {
			victim = i
		}
	}
	if err := c.StopChunkserver(victim); err != nil {
		t.Fatal(err)
	}
	copied := func(now []client.ChunkLocation) bool {
		for i, l := range now {
			if i >= len(locs) || !slices.Contains(locs[i].Replicas, locs[0].Replicas[0]) {
				continue
			}
			for _, r := range l.Replicas {
				if !slices.Contains(locs[i].Replicas, r) {
					return true
				}
			}
		}
		return false
	}
	copyDeadline := time.Now().Add(25 * time.Second)
	for {
		l, err := cl.Chunks(ctx, "/f")
		if err == nil && copied(l) {
			break
		}
		if time.Now().After(copyDeadline) {
			t.Fatalf("no chunk re-replicated within 25s under TLS: %v %v", l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range c.ChunkserverAddrs() {
		if cs := c.Chunkserver(i); cs != nil && cs.Refusals().Total() != 0 {
			t.Fatalf("chunkserver %d refused a request: %+v", i, cs.Refusals())
		}
	}
	if err := c.RestartChunkserver(victim); err != nil {
		t.Fatal(err)
	}

	// The chunkservers re-register with a restarted master over TLS.
	// The new master has new capability keys: once a fresh client wrote
	// with them (the chunkservers learnt them), the old client, holding
	// capabilities of the old keys, still reads (refused, it asks again).
	if err := c.RestartMaster(); err != nil {
		t.Fatal(err)
	}
	cl2, err := client.Dial(ctx, c.MasterAddr(), client.Options{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	f2, err := cl2.Open(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	copy(data, "rewritten after the restart")
	if _, err := f2.WriteAtContext(ctx, data[:64], 0); err != nil {
		t.Fatalf("write after master restart: %v", err)
	}
	if n, err := f.ReadAtContext(ctx, got, 0); n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("old client after master restart: read back %d bytes, err %v", n, err)
	}
}
