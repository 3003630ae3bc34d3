//go:build linux

package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chunkFilesOnDisk is what the chunk data files under dir hold on disk
// (st_blocks*512) and how many there are.
func chunkFilesOnDisk(t *testing.T, dir string) (bytes int64, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // deleted meanwhile (probe chunks)
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".chunk") {
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		bytes += st.Blocks * 512
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bytes, files
}

// Scenario 13 (idem): 1,000 files of a few hundred bytes in 64 MiB chunks,
// R=2. Once idle, each chunkserver holds about their data on disk, not a
// reservation per chunk (issue 15 defect 6: 4 MiB each, about 4 GB per
// chunkserver); a chunkserver killed (-9) and restarted gives back what it
// reserved, and every file reads back.
func TestSmallFilesGiveBackReservedSpace(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 2, replication: 2,
		masterArgs: []string{"-chunk-size", "64MiB"},
		csArgs:     []string{"-chunk-size", "64MiB", "-scrub-idle", "500ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cl := c.dial(t)
	const n, workers = 1000, 8
	data := func(i int) []byte { return []byte(fmt.Sprintf("%0*d", 200+i%400, i)) }
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := writeFile(ctx, cl, fmt.Sprintf("/small/f%04d", i), data(i)); err != nil {
					errs <- fmt.Errorf("file %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// At most one file system block per chunk, plus slack for the
	// waitServers probes' chunks.
	limit := int64(n+64) * 4096
	// Kill one chunkserver at once (its reservations, if any, stay on disk)
	// and restart it: Open gives them back.
	c.cs[1].kill()
	killed, _ := chunkFilesOnDisk(t, c.csDir[1])
	c.cs[1].start()
	for i, dir := range c.csDir {
		var got int64
		var files int
		took, ok := eventually(60*time.Second, func() bool {
			got, files = chunkFilesOnDisk(t, dir)
			return files >= n && got <= limit
		})
		if !ok {
			t.Fatalf("cs%d: %d chunk files hold %d bytes on disk after %v, want at least %d files and at most %d bytes", i, files, got, took, n, limit)
		}
		t.Logf("cs%d: %d chunk files, %d KiB on disk, %v after the writes", i, files, got>>10, took)
	}
	t.Logf("cs1 at kill -9: %d KiB on disk", killed>>10)
	c.waitServers(2, 60*time.Second)
	for i := 0; i < n; i += 37 {
		checkFile(t, cl, fmt.Sprintf("/small/f%04d", i), data(i))
	}
}
