package client_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/store"
)

// TestReadSkipsShortReplica: a listed replica whose copy of a chunk ends
// before the length the master knows (it missed acknowledged bytes at the
// same version) must not cut the file short: the read goes on to a
// replica that has the bytes (faults B10: a file read back as its first
// chunk only).
func TestReadSkipsShortReplica(t *testing.T) {
	opts := clusterOptions(t)
	cl, c := startCluster(t, opts)
	ctx := testCtx(t)
	const files = 4
	want := make([][]byte, files)
	for i := range files {
		want[i] = randomBytes(uint64(40+i), testChunkSize+300_000)
		p := "/f" + string(rune('0'+i))
		if err := c.Create(ctx, p, client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f, _ := c.Open(ctx, p)
		if _, err := f.WriteAtContext(ctx, want[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for the master's lengths to cover the data, then cut the last
	// chunk of every file short on all replicas but one (same handle, same
	// version, a few bytes only).
	addrs := cl.ChunkserverAddrs()
	listed := make([]int, files) // replicas of each last chunk
	cut := 0                     // copies cut short
	for i := range files {
		p := "/f" + string(rune('0'+i))
		var last client.ChunkLocation
		deadline := time.Now().Add(20 * time.Second)
		for {
			locs, err := c.Chunks(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			last = locs[len(locs)-1]
			// Whatever the master lists now (it may leave a chunk below
			// target for a while): all but one are cut short.
			// And no lease: a copy removed under a lease is a suspect the
			// master would not list again.
			if len(last.Replicas) >= 1 && last.Length == 300_000 && last.Primary == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last chunk %+v", p, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
		listed[i] = len(last.Replicas)
		for _, r := range last.Replicas[:len(last.Replicas)-1] {
			for j, a := range addrs {
				if a != r {
					continue
				}
				st := cl.Chunkserver(j).Store()
				h := store.Handle(last.Handle)
				info, err := st.Info(h)
				if errors.Is(err, store.ErrNotFound) {
					continue // listed, but its copy is gone already
				}
				if err != nil {
					t.Fatal(err)
				}
				cut++
				if err := st.Delete(h); err != nil {
					t.Fatal(err)
				}
				if err := st.Create(h, info.Version); err != nil {
					t.Fatal(err)
				}
				if err := st.WriteAt(h, want[i][testChunkSize:testChunkSize+1000], 0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if cut == 0 {
		t.Fatal("no last chunk had two replicas to cut one short")
	}
	// The master hears of the recreated copies through reports: wait until
	// it lists them all again (the short ones and the whole one).
	for i := range files {
		p := "/f" + string(rune('0'+i))
		deadline := time.Now().Add(20 * time.Second)
		for {
			locs, err := c.Chunks(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			last := locs[len(locs)-1]
			if len(last.Replicas) >= listed[i] && last.Length == 300_000 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last chunk %+v", p, last)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range files {
		p := "/f" + string(rune('0'+i))
		c2, err := client.Dial(ctx, cl.MasterAddr(), client.Options{RetryTimeout: 30 * time.Second, IOTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		f, err := c2.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		r := f.NewReader(ctx)
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		if !bytes.Equal(got, want[i]) {
			t.Fatalf("read %s: %d bytes, want %d", p, len(got), len(want[i]))
		}
	}
}
