package faults

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// Scenario 6: a chunkserver is down while its chunk's version moves on (a
// new lease after the old one expired); when it comes back its copy is
// never listed or served, and it is deleted from its disk.
func TestStaleReplicaNeverServedAndDeleted(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 4, replication: 3})
	ctx := context.Background()
	cl := c.dial(t)
	const path = "/stale/f"
	old := pattern(61, chunkSize/2)
	if err := writeFile(ctx, cl, path, old); err != nil {
		t.Fatal(err)
	}
	locs, err := cl.Chunks(ctx, path)
	if err != nil || len(locs) != 1 {
		t.Fatalf("chunks: %v %v", locs, err)
	}
	loc := locs[0]
	// The victim: a replica that is not the primary.
	victim := -1
	for _, r := range loc.Replicas {
		if r != loc.Primary {
			victim = c.csIndex(r)
			break
		}
	}
	vaddr := c.csAddr[victim]
	t.Logf("chunk %x v%d on %v (primary %s); kill -9 %s", loc.Handle, loc.Version, loc.Replicas, loc.Primary, vaddr)
	c.cs[victim].kill()
	if _, err := os.Stat(chunkFile(c.csDir[victim], loc.Handle)); err != nil {
		t.Fatalf("victim's chunk file: %v", err)
	}
	// Wait until the master declared it dead and the lease ran out, so the
	// next write needs a new lease: a new version without the victim.
	time.Sleep(deadAfter + leaseTTL + 500*time.Millisecond)
	f, err := cl.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	newer := pattern(62, chunkSize/2)
	if _, err := f.WriteAtContext(ctx, newer, 0); err != nil {
		t.Fatal(err)
	}
	now, err := cl.Chunks(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if now[0].Version <= loc.Version {
		t.Fatalf("version did not move on: v%d -> v%d", loc.Version, now[0].Version)
	}
	t.Logf("chunk now v%d on %v", now[0].Version, now[0].Replicas)

	c.cs[victim].start()
	c.waitServers(4, 30*time.Second)
	// From now on: the victim is never listed, reads return the new data,
	// and its file disappears.
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	took, ok := eventually(30*time.Second, func() bool {
		cur, err := cl.Chunks(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(cur[0].Replicas, vaddr) {
			t.Fatalf("stale replica %s listed for chunk %x v%d: %v", vaddr, cur[0].Handle, cur[0].Version, cur[0].Replicas)
		}
		got, err := readAll(ctx, cl, path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, newer) {
			t.Fatalf("read returned old or wrong data (first difference at %d)", firstDiff(got, newer))
		}
		// Asked directly, the victim refuses to serve the current version.
		buf := make([]byte, 4096)
		if _, err := dc.Read(ctx, vaddr, cur[0].Handle, cur[0].Version, 0, buf); err == nil {
			t.Fatalf("stale replica %s served chunk %x at v%d", vaddr, cur[0].Handle, cur[0].Version)
		} else if !errors.Is(err, dataclient.ErrStaleVersion) && !errors.Is(err, dataclient.ErrNoSuchChunk) {
			t.Logf("stale replica read: %v", err)
		}
		_, err = os.Stat(chunkFile(c.csDir[victim], loc.Handle))
		return errors.Is(err, os.ErrNotExist)
	})
	if !ok {
		t.Fatalf("stale replica's chunk file still on %s's disk after %v", vaddr, took)
	}
	t.Logf("stale replica deleted from disk %v after its server came back (bound 30s)", took.Round(time.Millisecond))
	waitReplication(t, cl, []string{path}, 3, nil, 30*time.Second)
	checkFile(t, cl, path, newer)
}
