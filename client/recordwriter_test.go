package client_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/gfs-go/gfs/client"
)

// readRecords reads every record of path once (the reader drops
// duplicates), keyed by payload.
func readRecords(t *testing.T, c *client.Client, path string) map[string]int {
	t.Helper()
	rr := c.NewRecordReader(testCtx(t), path)
	defer rr.Close()
	seen := map[string]int{}
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return seen
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[string(rec.Data)]++
	}
}

// TestRecordWriter: writers pipelining records into one file, across
// chunks that fill up; every record reads back exactly once.
func TestRecordWriter(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rw, err := c.NewRecordWriter(ctx, "/log", 8)
			if err != nil {
				errs <- err
				return
			}
			for i := range perWriter {
				rec := fmt.Sprintf("w%d-r%d-%s", w, i, randomBytes(uint64(w*1000+i), (w*7919+i*104729)%(6<<10)))
				if err := rw.Append([]byte(rec)); err != nil {
					errs <- err
					return
				}
			}
			if err := rw.Close(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := readRecords(t, c, "/log")
	for w := range writers {
		for i := range perWriter {
			rec := fmt.Sprintf("w%d-r%d-%s", w, i, randomBytes(uint64(w*1000+i), (w*7919+i*104729)%(6<<10)))
			if seen[rec] != 1 {
				t.Fatalf("record w%d-r%d read %d times", w, i, seen[rec])
			}
		}
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("%d records read, %d written", len(seen), writers*perWriter)
	}
	fi, _ := c.Stat(ctx, "/log")
	if fi.Chunks < 2 {
		t.Fatalf("test wrote %d chunks; want several to cover full chunks", fi.Chunks)
	}

	// A record over a quarter chunk is refused alone; the writer goes on.
	rw, err := c.NewRecordWriter(ctx, "/log", 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Append(make([]byte, testChunkSize/4)); !errors.Is(err, client.ErrRecordTooLarge) {
		t.Fatalf("oversized record: %v", err)
	}
	if err := rw.Append([]byte("after the big one")); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rw.Append([]byte("after close")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if readRecords(t, c, "/log")["after the big one"] != 1 {
		t.Fatal("record after the refused one not read back")
	}
}

// TestRecordWriterSurvivesPrimaryStop: the primary of the chunk a writer
// streams to stops; records in flight and later ones are appended again
// after a fresh lookup, and every record reads back.
func TestRecordWriterSurvivesPrimaryStop(t *testing.T) {
	opts := clusterOptions(t)
	opts.Chunkservers = 4
	cl, c := startCluster(t, opts)
	ctx := testCtx(t)
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rw, err := c.NewRecordWriter(ctx, "/log", 16)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	rec := func(i int) string { return fmt.Sprintf("r%d-%s", i, randomBytes(uint64(i), 1000)) }
	for i := range n {
		if i == n/2 {
			if err := rw.Flush(); err != nil {
				t.Fatal(err)
			}
			locs, err := c.Chunks(ctx, "/log")
			if err != nil || len(locs) == 0 {
				t.Fatalf("chunks: %v %v", locs, err)
			}
			primary := locs[len(locs)-1].Primary
			for j, a := range cl.ChunkserverAddrs() {
				if a == primary {
					if err := cl.StopChunkserver(j); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := rw.Append([]byte(rec(i))); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	seen := readRecords(t, c, "/log")
	for i := range n {
		if seen[rec(i)] != 1 {
			t.Fatalf("record %d read %d times", i, seen[rec(i)])
		}
	}
}
