package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func opts(dir string) cluster.Options {
	return cluster.Options{
		Dir:               dir,
		Chunkservers:      3,
		ChunkSize:         1 << 20,
		LeaseTTL:          2 * time.Second,
		HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter:         500 * time.Millisecond,
	}
}

func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	for _, o := range []cluster.Options{
		{},
		{Dir: t.TempDir(), Chunkservers: -1},
		{Dir: t.TempDir(), Chunkservers: 2, Replication: 3},
		{Dir: t.TempDir(), ChunkSize: -5},
	} {
		if c, err := cluster.Start(ctx, o); err == nil {
			c.Close()
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestRestartKeepsDataAndAddresses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := cluster.Start(ctx, opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	addr, csAddrs := c.MasterAddr(), c.ChunkserverAddrs()
	if len(csAddrs) != 3 {
		t.Fatalf("%d chunkserver addresses", len(csAddrs))
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 chunks
	write(t, ctx, addr, data)

	// One chunkserver down and back: the file stays readable throughout.
	if err := c.StopChunkserver(1); err != nil {
		t.Fatal(err)
	}
	if c.Chunkserver(1) != nil {
		t.Fatal("stopped chunkserver still returned")
	}
	check(t, ctx, addr, data)
	if err := c.RestartChunkserver(1); err != nil {
		t.Fatal(err)
	}
	if got := c.ChunkserverAddrs()[1]; got != csAddrs[1] {
		t.Fatalf("restarted chunkserver on %s, was %s", got, csAddrs[1])
	}
	if err := c.StopChunkserver(7); err == nil {
		t.Fatal("StopChunkserver(7) succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	c, err = cluster.Start(ctx, opts(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.MasterAddr() != addr {
		t.Errorf("master came back on %s, was %s", c.MasterAddr(), addr)
	}
	check(t, ctx, c.MasterAddr(), data)
}

func write(t *testing.T, ctx context.Context, addr string, data []byte) {
	t.Helper()
	cl, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
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
}

func check(t *testing.T, ctx context.Context, addr string, data []byte) {
	t.Helper()
	cl, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f, err := cl.Open(ctx, "/f")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data)+1)
	n, err := f.ReadAtContext(ctx, got, 0)
	if n != len(data) || !errors.Is(err, io.EOF) || !bytes.Equal(got[:n], data) {
		t.Fatalf("read back %d bytes, %v (equal %v)", n, err, bytes.Equal(got[:n], data))
	}
}

// TestRestartMaster: the master goes away and comes back on the same
// address; a client's calls made meanwhile retry and succeed, and the data
// written before is still there.
func TestRestartMaster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, opts(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := bytes.Repeat([]byte("restart "), 200000)
	write(t, ctx, c.MasterAddr(), data)

	cl, err := client.Dial(ctx, c.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := c.StopMaster(); err != nil {
		t.Fatal(err)
	}
	if c.Master() != nil {
		t.Fatal("stopped master still returned")
	}
	statDone := make(chan error, 1)
	go func() {
		_, err := cl.Stat(ctx, "/f")
		statDone <- err
	}()
	time.Sleep(200 * time.Millisecond) // the Stat is retrying against a closed port
	if err := c.RestartMaster(); err != nil {
		t.Fatal(err)
	}
	if err := <-statDone; err != nil {
		t.Fatalf("stat across the master restart: %v", err)
	}
	check(t, ctx, c.MasterAddr(), data)
	// Mutations work again once the new master may grant leases.
	if _, err := cl.RecordAppend(ctx, "/f", []byte("after restart")); err != nil {
		t.Fatalf("append after restart: %v", err)
	}
}
