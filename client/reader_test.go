package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gfs-go/gfs/client"
)

func TestReaderCloseMidStreamAndCancel(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	data := randomBytes(31, 5*testChunkSize+333)
	if err := c.Create(ctx, "/f", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Open(ctx, "/f")
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}

	// Small reads through the io.Reader interface, then Close with
	// segments still in flight (goleak in TestMain checks they stopped).
	r := f.NewReader(ctx)
	head := make([]byte, 1000)
	if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, data[:1000]) {
		t.Fatalf("head: %v", err)
	}
	r.Close()
	if _, err := r.Read(head); err == nil {
		t.Fatal("read after Close succeeded")
	}

	// iotest.TestReader checks the io.Reader contract on the whole stream.
	r = f.NewReader(ctx)
	if err := iotest.TestReader(r, data); err != nil {
		t.Fatal(err)
	}
	r.Close()

	// From an offset inside the second chunk.
	r = f.NewReaderAt(ctx, testChunkSize+5)
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(rest, data[testChunkSize+5:]) {
		t.Fatalf("NewReaderAt: %d bytes, %v", len(rest), err)
	}

	// A cancelled context ends the stream with its error.
	cctx, cancel := context.WithCancel(ctx)
	r = f.NewReader(cctx)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err == nil {
		// Everything may have been read ahead before the cancel; then the
		// copy legitimately succeeds. Otherwise it must be the context's error.
		return
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("copy after cancel: %v, want context.Canceled", err)
	}
}

// TestReaderWindowOddSegments: segments that do not divide the chunk size
// (each still ends at a chunk boundary) and a window of a few of them
// stream every byte in order, from the start and from an odd offset.
func TestReaderWindowOddSegments(t *testing.T) {
	cl, _ := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	c, err := client.Dial(ctx, cl.MasterAddr(), client.Options{
		ReadSegmentBytes: 300_000, ReadaheadBytes: 3 * 300_000,
		RetryTimeout: 30 * time.Second, IOTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := randomBytes(32, 3*testChunkSize+4321)
	if err := c.Create(ctx, "/odd", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, _ := c.Open(ctx, "/odd")
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	r := f.NewReader(ctx)
	if err := iotest.TestReader(r, data); err != nil {
		t.Fatal(err)
	}
	r.Close()
	for _, off := range []int64{1, testChunkSize - 1, 2*testChunkSize + 299_999} {
		r := f.NewReaderAt(ctx, off)
		var got bytes.Buffer
		_, err := r.WriteTo(&got)
		r.Close()
		if err != nil || !bytes.Equal(got.Bytes(), data[off:]) {
			t.Fatalf("from %d: %d bytes, %v (equal %v)", off, got.Len(), err, bytes.Equal(got.Bytes(), data[off:]))
		}
	}
}
