//go:build linux

package chunkserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
)

// chunkDiskBytes is what the chunk data files under dir hold on disk.
func chunkDiskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".chunk") {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// TestSmallChunksGiveBackReservation: a client writes 1,000 chunks of 300
// bytes through a chunkserver (64 MiB chunks); once they are idle the
// chunkserver holds about their data on disk, not a reservation per chunk
// (issue 15 defect 6: 4 MiB each, about 4 GB), and every chunk reads back.
func TestSmallChunksGiveBackReservation(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	s := startServer(t, func(o *Options) {
		o.Dir = dir
		o.Store.ChunkSize = 64 << 20
		o.Store.ScrubIdle = 200 * time.Millisecond
	})
	c := dialCtl(t, s.Addr())
	dc := newClient(t)
	ctx := context.Background()
	const n = 1000
	for i := range n {
		h := uint64(i + 1)
		if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GrantLease(ctx, grantLease(h, 1, 60000)); err != nil {
			t.Fatal(err)
		}
		data := []byte(fmt.Sprintf("%0300d", h))
		if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), h, 1, 0, data, true); err != nil {
			t.Fatal(err)
		}
	}
	written := chunkDiskBytes(t, dir)
	deadline := time.Now().Add(30 * time.Second)
	var idle int64
	for idle = chunkDiskBytes(t, dir); idle > n*4096; idle = chunkDiskBytes(t, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks of 300 bytes hold %d bytes on disk after 30 s idle, want at most %d", n, idle, n*4096)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d chunks of 300 B: %d KiB on disk right after the writes, %d KiB once idle", n, written>>10, idle>>10)
	for _, h := range []uint64{1, n / 2, n} {
		if got, want := string(readAll(t, dc, s.Addr(), h)), fmt.Sprintf("%0300d", h); got != want {
			t.Fatalf("chunk %d reads %q, want %q", h, got, want)
		}
	}
}
