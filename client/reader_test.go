package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"

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
