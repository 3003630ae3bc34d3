package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testChunkSize keeps multi-chunk tests small and fast.
const testChunkSize = 1 << 20

// clusterOptions are short timers for tests: dead chunkservers are noticed
// within a second and leases of dead primaries run out within two.
func clusterOptions(t testing.TB) cluster.Options {
	return cluster.Options{
		Dir:               t.TempDir(),
		Chunkservers:      3,
		ChunkSize:         testChunkSize,
		Replication:       3,
		LeaseTTL:          2 * time.Second,
		HeartbeatInterval: 50 * time.Millisecond,
		DeadAfter:         500 * time.Millisecond,
		GCGrace:           time.Second,
		Logger:            debugLogger(t),
	}
}

// debugLogger writes the cluster's debug log to a file in
// $GFS_TEST_LOGDIR, one per test run, when it is set (for chasing failures
// seen under load); nil (discard) otherwise.
func debugLogger(t testing.TB) *slog.Logger {
	dir := os.Getenv("GFS_TEST_LOGDIR")
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startCluster starts an in-process cluster and a client on it, both closed
// at the end of the test.
func startCluster(t testing.TB, opts cluster.Options) (*cluster.Cluster, *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := cl.Close(); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	c, err := client.Dial(ctx, cl.MasterAddr(), client.Options{RetryTimeout: 30 * time.Second, IOTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return cl, c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
