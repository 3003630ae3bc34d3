package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gfs-go/gfs/client"
)

// corruptReplica flips bytes in the stored data of chunk h on the
// chunkserver whose directory is csDir.
func corruptReplica(t *testing.T, csDir string, h uint64, off int64) {
	t.Helper()
	var found string
	filepath.WalkDir(csDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == fmt.Sprintf("%016x.chunk", h) {
			found = p
		}
		return nil
	})
	if found == "" {
		t.Fatalf("no data file of chunk %x under %s", h, csDir)
	}
	f, err := os.OpenFile(found, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 64)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestReadFailsOverCorruptReplicas(t *testing.T) {
	opts := clusterOptions(t)
	cl, c := startCluster(t, opts)
	ctx := testCtx(t)
	data := randomBytes(11, testChunkSize+1000)
	if err := c.Create(ctx, "/f", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Open(ctx, "/f")
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	locs, err := c.Chunks(ctx, "/f")
	if err != nil || len(locs) != 2 {
		t.Fatalf("chunks = %v, %v", locs, err)
	}
	// Corrupt chunk 0 on two of its three replicas: reads must still
	// return the right bytes, from the third.
	addrs := cl.ChunkserverAddrs()
	corrupted := 0
	for i, a := range addrs {
		for _, r := range locs[0].Replicas {
			if r == a && corrupted < 2 {
				corruptReplica(t, filepath.Join(opts.Dir, fmt.Sprintf("cs%d", i)), locs[0].Handle, 70000)
				corrupted++
			}
		}
	}
	if corrupted != 2 {
		t.Fatalf("corrupted %d replicas", corrupted)
	}
	// A fresh client, so no connection or cache predates the corruption.
	c2, err := client.Dial(ctx, cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	f2, _ := c2.Open(ctx, "/f")
	for round := 0; round < 3; round++ {
		got := make([]byte, len(data))
		n, err := f2.ReadAtContext(ctx, got, 0)
		if n != len(data) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("round %d: read = %d, %v", round, n, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("round %d: corrupt data returned", round)
		}
	}
	// The two corrupted replicas fail verification (or are gone already,
	// reported by the reads above).
	bad := 0
	for _, r := range locs[0].Replicas {
		if _, err := c2.VerifyReplica(ctx, locs[0], r); err != nil {
			t.Logf("replica %s: %v", r, err)
			bad++
		}
	}
	if bad != 2 {
		t.Fatalf("%d replicas fail verification, want the 2 corrupted", bad)
	}
}

func TestWriteSurvivesPrimaryStop(t *testing.T) {
	opts := clusterOptions(t)
	opts.Chunkservers = 4
	cl, c := startCluster(t, opts)
	ctx := testCtx(t)
	if err := c.Create(ctx, "/f", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Open(ctx, "/f")
	first := randomBytes(21, 1000)
	if _, err := f.WriteAtContext(ctx, first, 0); err != nil {
		t.Fatal(err)
	}
	locs, err := c.Chunks(ctx, "/f")
	if err != nil || len(locs) != 1 || locs[0].Primary == "" {
		t.Fatalf("chunks = %+v, %v", locs, err)
	}
	// Stop the primary: the next write must wait for the master to notice,
	// let the lease run out and grant a new one, and then succeed.
	for i, a := range cl.ChunkserverAddrs() {
		if a == locs[0].Primary {
			if err := cl.StopChunkserver(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	second := randomBytes(22, 3000)
	if _, err := f.WriteAtContext(ctx, second, 500); err != nil {
		t.Fatalf("write after the primary stopped: %v", err)
	}
	want := append(bytes.Clone(first[:500]), second...)
	got := make([]byte, len(want)+1)
	n, err := f.ReadAtContext(ctx, got, 0)
	if n != len(want) || !errors.Is(err, io.EOF) || !bytes.Equal(got[:n], want) {
		t.Fatalf("read back = %d, %v (equal %v)", n, err, bytes.Equal(got[:n], want))
	}
	after, _ := c.Chunks(ctx, "/f")
	for _, r := range after[0].Replicas {
		if r == locs[0].Primary {
			t.Fatalf("stopped primary %s still listed as a replica: %v", r, after[0].Replicas)
		}
	}
}
