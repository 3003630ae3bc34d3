package client_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/gfs-go/gfs/client"
)

func TestRecordAppendConcurrent(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 8, 40
	type ack struct {
		off  int64
		data string
	}
	acks := make([][]ack, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				// Up to ~24 KiB: several records per chunk, padding at chunk ends.
				rec := fmt.Sprintf("w%d-r%d-%s", w, i, randomBytes(uint64(w*1000+i), (w*7919+i*104729)%(24<<10)))
				off, err := c.RecordAppend(ctx, "/log", []byte(rec))
				if err != nil {
					errs <- err
					return
				}
				acks[w] = append(acks[w], ack{off, rec})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[int64]string{}
	for _, as := range acks {
		for _, a := range as {
			if _, dup := want[a.off]; dup {
				t.Fatalf("two appends acknowledged at offset %d", a.off)
			}
			want[a.off] = a.data
		}
	}
	rr := c.NewRecordReader(ctx, "/log")
	defer rr.Close()
	seen := map[string]bool{}
	last := int64(-1)
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Offset <= last {
			t.Fatalf("record at %d after %d: not in file order", rec.Offset, last)
		}
		last = rec.Offset
		if seen[string(rec.Data)] {
			t.Fatalf("record at %d returned twice", rec.Offset)
		}
		seen[string(rec.Data)] = true
		if rec.ID.Writer != c.ID() {
			t.Fatalf("record at %d has writer %x, want %x", rec.Offset, rec.ID.Writer, c.ID())
		}
		if w, ok := want[rec.Offset]; ok && w != string(rec.Data) {
			t.Fatalf("record at acknowledged offset %d differs", rec.Offset)
		}
	}
	for off, d := range want {
		if !seen[d] {
			t.Fatalf("acknowledged record at %d not read back", off)
		}
	}
	fi, _ := c.Stat(ctx, "/log")
	if fi.Chunks < 2 {
		t.Fatalf("test wrote %d chunks; want several to cover padding", fi.Chunks)
	}
}

func TestRecordAppendTooLarge(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	limit := testChunkSize/4 - client.RecordHeaderSize
	if _, err := c.RecordAppend(ctx, "/log", make([]byte, limit+1)); !errors.Is(err, client.ErrRecordTooLarge) {
		t.Fatalf("append of %d bytes: %v, want ErrRecordTooLarge", limit+1, err)
	}
	if _, err := c.RecordAppend(ctx, "/log", make([]byte, limit)); err != nil {
		t.Fatalf("append of the limit: %v", err)
	}
	if _, err := c.RecordAppend(ctx, "/missing", []byte("x")); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("append to missing file: %v, want ErrNotFound", err)
	}
}
