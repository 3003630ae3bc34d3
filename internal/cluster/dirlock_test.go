package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/internal/dirlock"
)

// TestSecondClusterOnLiveDirRefused: Start on the directory of a running
// cluster fails with an error naming it and starts nothing; after Close
// the directory starts again.
func TestSecondClusterOnLiveDirRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := opts(dir)
	o.Chunkservers = 1
	c, err := cluster.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := cluster.Start(ctx, o); err == nil {
		c2.Close()
		c.Close()
		t.Fatal("a second cluster started on a live cluster's directory")
	} else if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), dir) {
		c.Close()
		t.Fatalf("second Start: %v, want dirlock.ErrLocked naming %s", err, dir)
	}
	write(t, ctx, c.MasterAddr(), []byte("still serving"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = cluster.Start(ctx, o)
	if err != nil {
		t.Fatalf("Start after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
