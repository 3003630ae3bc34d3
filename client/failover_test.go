package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	// Corrupt all but one replica of chunk 0: reads must still return the
	// right bytes, from the last good one. The master may list a replica
	// that does not hold the data yet (a copy target) or leave a chunk
	// with two replicas for a while (one missed a version bump), so only
	// replicas that verify count; three are preferred, two suffice.
	var locs []client.ChunkLocation
	prefer3 := time.Now().Add(3 * time.Second)
	giveUp := time.Now().Add(20 * time.Second)
	for {
		var err error
		locs, err = c.Chunks(ctx, "/f")
		if err != nil || len(locs) != 2 {
			t.Fatalf("chunks = %v, %v", locs, err)
		}
		n := len(locs[0].Replicas)
		if (n == 3 || (n == 2 && time.Now().After(prefer3))) && allVerify(ctx, c, locs[0]) {
			break
		}
		if time.Now().After(giveUp) {
			for _, r := range locs[0].Replicas {
				_, err := c.VerifyReplica(ctx, locs[0], r)
				t.Logf("replica %s: %v", r, err)
			}
			t.Fatalf("chunk 0 never got 2 listed replicas that verify (master replica lists did not converge): %+v", locs[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	addrs := cl.ChunkserverAddrs()
	corrupted := 0
	for _, r := range locs[0].Replicas[1:] {
		for i, a := range addrs {
			if r == a {
				corruptReplica(t, filepath.Join(opts.Dir, fmt.Sprintf("cs%d", i)), locs[0].Handle, 70000)
				corrupted++
			}
		}
	}
	if corrupted != len(locs[0].Replicas)-1 {
		t.Fatalf("corrupted %d of %v", corrupted, locs[0].Replicas)
	}
	// A fresh client, so no connection or cache predates the corruption.
	c2, err := client.Dial(ctx, cl.MasterAddr(), client.Options{Logger: testLogger(t)})
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
	// The corrupted replicas fail verification (or are gone already,
	// reported by the reads above).
	bad := 0
	for _, r := range locs[0].Replicas {
		if _, err := c2.VerifyReplica(ctx, locs[0], r); err != nil {
			t.Logf("replica %s: %v", r, err)
			bad++
		}
	}
	if bad != corrupted {
		t.Fatalf("%d replicas fail verification, want the %d corrupted", bad, corrupted)
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

// testLogger sends debug logs to the test's log (shown when it fails).
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// allVerify reports whether every listed replica of loc holds the chunk
// and passes verification.
func allVerify(ctx context.Context, c *client.Client, loc client.ChunkLocation) bool {
	for _, r := range loc.Replicas {
		if _, err := c.VerifyReplica(ctx, loc, r); err != nil {
			return false
		}
	}
	return true
}

// holderOfAll waits until some chunkserver is a listed replica of every
// chunk of path and holds a copy that verifies, and returns its address.
// It fails the test if none appears within 30 s (the master's replica
// lists did not converge).
func holderOfAll(t *testing.T, ctx context.Context, c *client.Client, path string) string {
	t.Helper()
	giveUp := time.Now().Add(30 * time.Second)
	for {
		locs, err := c.Chunks(ctx, path)
		if err != nil {
			t.Fatalf("chunks of %s: %v", path, err)
		}
		if len(locs) > 0 {
		candidates:
			for _, addr := range locs[0].Replicas {
				for _, l := range locs {
					if !slices.Contains(l.Replicas, addr) {
						continue candidates
					}
					if _, err := c.VerifyReplica(ctx, l, addr); err != nil {
						continue candidates
					}
				}
				return addr
			}
		}
		if time.Now().After(giveUp) {
			t.Fatalf("no chunkserver holds a verified copy of every chunk of %s: %+v", path, locs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
