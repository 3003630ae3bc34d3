package cluster_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/internal/cluster"
)

// TestReplicaCheckRepairsDivergenceUnderTLS: one replica of a chunk gets
// other bytes at the same version, with valid checksums (it verifies
// alone). With the replica check on and mutual TLS, the chunkservers find
// it by comparing block checksums (BlockChecksums, a chunkserver calling
// a chunkserver), report it to the master, which drops it and copies a
// good replica over it: every replica holds what was written again,
// without anyone running fsck.
func TestReplicaCheckRepairsDivergenceUnderTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := opts(t.TempDir())
	o.TLSDir = filepath.Join(t.TempDir(), "certs")
	o.Chunkserver.ReplicaCheckInterval = 20 * time.Millisecond
	c, err := cluster.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := client.Dial(ctx, c.MasterAddr(), client.Options{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := bytes.Repeat([]byte("replica check "), 20000) // 4 full blocks and a partial one
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
	var want []uint64
	for off := 0; off < len(data); off += store.BlockSize {
		want = append(want, xxhash.Sum64(data[off:min(off+store.BlockSize, len(data))]))
	}
	// intact reports whether chunk 0 has 3 replicas, no lease, and every
	// replica holds data.
	intact := func() (client.ChunkLocation, bool) {
		locs, err := cl.Chunks(ctx, "/f")
		if err != nil || len(locs) != 1 || len(locs[0].Replicas) != 3 || locs[0].Primary != "" {
			return client.ChunkLocation{}, false
		}
		for _, r := range locs[0].Replicas {
			rc, err := cl.ReadReplica(ctx, locs[0], r)
			if err != nil || rc.Length != int64(len(data)) || !slices.Equal(rc.Blocks, want) {
				return locs[0], false
			}
		}
		return locs[0], true
	}
	var loc client.ChunkLocation
	waitUntil(t, 30*time.Second, "the written chunk settled on 3 replicas", func() bool {
		var ok bool
		loc, ok = intact()
		return ok
	})
	victim := slices.Index(c.ChunkserverAddrs(), loc.Replicas[2])
	if err := c.Chunkserver(victim).Store().WriteAt(store.Handle(loc.Handle), []byte("not what was written"), store.BlockSize+7); err != nil {
		t.Fatal(err)
	}
	diverged := time.Now()
	if rc, err := cl.ReadReplica(ctx, loc, loc.Replicas[2]); err != nil || slices.Equal(rc.Blocks, want) {
		t.Fatalf("the divergence was not planted: %v", err)
	}
	waitUntil(t, 30*time.Second, "every replica equal to the written bytes again", func() bool {
		_, ok := intact()
		return ok
	})
	took := time.Since(diverged)
	var reported uint64
	for i := range c.ChunkserverAddrs() {
		reported += c.Chunkserver(i).ReplicaChecks().Reported
	}
	if reported == 0 {
		t.Fatal("repaired without a report from the replica check")
	}
	t.Logf("divergent replica %s found, reported and replaced %v after the divergence (check every %v)", loc.Replicas[2], took.Round(time.Millisecond), o.Chunkserver.ReplicaCheckInterval)
}

func waitUntil(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", bound, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
