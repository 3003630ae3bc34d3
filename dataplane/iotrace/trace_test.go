//go:build linux && amd64

package iotrace_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/iotrace"
	"github.com/gfs-go/gfs/internal/cluster"
)

// kind returns the histogram named name from s.
func kind(t *testing.T, s iotrace.Snapshot, name string) iotrace.Hist {
	t.Helper()
	for i, n := range iotrace.Kinds() {
		if n == name {
			return s.Hists[i]
		}
	}
	t.Fatalf("no histogram %q", name)
	return iotrace.Hist{}
}

// TestTraceChunkserverWorkload traces this test process, which runs a real
// one-chunkserver cluster, while a client writes and reads known amounts:
// the chunkserver's pwrite64/pread64 counts and bytes and its block writes
// must cover at least what the workload implies. Tracing the wrong process
// (or nothing) reports zero and fails.
func TestTraceChunkserverWorkload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF+CAP_PERFMON) to load BPF programs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := cluster.Start(ctx, cluster.Options{
		Dir: t.TempDir(), Chunkservers: 1, Replication: 1, ChunkSize: 4 << 20,
		LeaseTTL: 2 * time.Second, HeartbeatInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, err := client.Dial(ctx, cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Create(ctx, "/traced", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, "/traced")
	if err != nil {
		t.Fatal(err)
	}

	tr, err := iotrace.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	before, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	const writes, reads, size = 40, 30, 64 << 10
	data := bytes.Repeat([]byte("traced bytes 0123456789abcdef\n"), size/30+1)[:size]
	for i := range writes {
		if _, err := f.WriteAtContext(ctx, data, int64(i)*size); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	buf := make([]byte, size)
	for i := range reads {
		if _, err := f.ReadAtContext(ctx, buf, int64(i)*size); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(buf, data) {
			t.Fatalf("read %d: wrong data", i)
		}
	}

	after, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	for _, name := range iotrace.Kinds() {
		h := kind(t, d, name)
		t.Logf("%-12s count %6d errors %d bytes %10d", name, h.Count, h.Errors, h.Bytes)
	}
	pw := kind(t, d, "pwrite64")
	if pw.Count < writes || pw.Bytes < writes*size {
		t.Errorf("pwrite64: count %d bytes %d; the workload wrote %d x %d bytes", pw.Count, pw.Bytes, writes, size)
	}
	// Reads are served by pread+write or by sendfile (the send mode).
	pr, sf := kind(t, d, "pread64"), kind(t, d, "sendfile64")
	if pr.Bytes+sf.Bytes < reads*size || pr.Count+sf.Count < reads {
		t.Errorf("pread64 %d calls %d bytes + sendfile64 %d calls %d bytes; the workload read %d x %d bytes",
			pr.Count, pr.Bytes, sf.Count, sf.Bytes, reads, size)
	}
	// The store writes chunk data with O_DIRECT: every byte goes to the
	// device from the chunkserver's own threads.
	if bw := kind(t, d, "block_write"); bw.Bytes < writes*size {
		t.Errorf("block_write: %d requests %d bytes; the workload wrote %d bytes with O_DIRECT", bw.Count, bw.Bytes, writes*size)
	}
	var total uint64
	for _, h := range d.Hists {
		var inSlots uint64
		for _, n := range h.Slots {
			inSlots += n
		}
		if inSlots != h.Count {
			t.Errorf("buckets hold %d calls, count says %d", inSlots, h.Count)
		}
		total += h.Count
	}
	if total == 0 {
		t.Fatal("nothing traced")
	}
}

func TestOpenBadPID(t *testing.T) {
	if _, err := iotrace.Open(-1); !errors.Is(err, iotrace.ErrNoProcess) {
		t.Fatalf("Open(-1): %v, want ErrNoProcess", err)
	}
	if _, err := iotrace.Open(1 << 30); !errors.Is(err, iotrace.ErrNoProcess) {
		t.Fatalf("Open(1<<30): %v, want ErrNoProcess", err)
	}
}
