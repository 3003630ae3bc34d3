package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// TestPutInterruptedLeavesNothing: a put whose context ends (SIGINT) in the
// middle fails and removes its temporary file; REMOTE never appears.
func TestPutInterruptedLeavesNothing(t *testing.T) {
	cl := startTestCluster(t, 3)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- cmdPut(ctx, []string{"-master", cl.MasterAddr(), "-buffer", "64KiB", "-", "/f"},
			IO{Stdin: pr, Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }})
	}()
	// Some data reaches the cluster, then the interrupt.
	if _, err := pw.Write(bytes.Repeat([]byte("x"), 300<<10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	pw.CloseWithError(io.ErrClosedPipe)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("interrupted put succeeded")
		}
	case <-time.After(time.Minute):
		t.Fatal("put did not return after cancel")
	}
	c, err := client.Dial(context.Background(), cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	entries, err := c.List(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == "f" || strings.HasPrefix(e.Name, ".f.put-") {
			t.Fatalf("interrupted put left %s", e.Path)
		}
	}
}
