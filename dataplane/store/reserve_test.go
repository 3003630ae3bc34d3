//go:build linux

package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diskBytes is what the data files in dir hold on disk (st_blocks*512) and
// how many there are.
func diskBytes(t *testing.T, dir string) (total int64, files int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".chunk") {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, e.Name()), &st); err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
		files++
	}
	return total, files
}

// smallChunks creates n chunks holding 100-900 random bytes each.
func smallChunks(t *testing.T, s *Store, n int) map[Handle][]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(15, 6))
	want := map[Handle][]byte{}
	for i := range n {
		h := Handle(i + 1)
		if err := s.Create(h, 1); err != nil {
			t.Fatal(err)
		}
		p := randBytes(r, 100+r.IntN(800))
		if _, err := s.Append(h, p); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(h); err != nil {
			t.Fatal(err)
		}
		want[h] = p
	}
	return want
}

// waitDisk waits (bound 30 s) until the data files hold at most limit bytes.
func waitDisk(t *testing.T, dir string, limit int64) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := diskBytes(t, dir)
		if got <= limit {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("data files hold %d bytes after 30 s idle, want at most %d", got, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReservationGivenBackWhenIdle: 1,000 chunks of a few hundred bytes
// reserve a little each while written and, once idle, hold about their
// data on disk (issue 15 defect 6: they kept 4 MiB each, 4 GB in all),
// with the scrubber on and off. Data stays intact, and appends after the
// release still work.
func TestReservationGivenBackWhenIdle(t *testing.T) {
	for _, rate := range []int64{0, -1} {
		t.Run(fmt.Sprintf("scrubRate=%d", rate), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, Options{ChunkSize: 64 << 20, ScrubIdle: 100 * time.Millisecond, ScrubRate: rate})
			defer s.Close()
			const n = 1000
			want := smallChunks(t, s, n)
			written, files := diskBytes(t, dir)
			if files != n {
				t.Fatalf("%d data files, want %d", files, n)
			}
			// About the data: one file system block per chunk (4 KiB).
			idle := waitDisk(t, dir, n*4096)
			t.Logf("%d chunks of 100-900 B: %d KiB on disk while written, %d KiB once idle", n, written>>10, idle>>10)
			for h, p := range want {
				checkChunk(t, s, h, p)
			}
			more := bytes.Repeat([]byte("x"), 70000)
			for h := Handle(1); h <= 10; h++ {
				if _, err := s.Append(h, more); err != nil {
					t.Fatal(err)
				}
				want[h] = append(want[h], more...)
				checkChunk(t, s, h, want[h])
			}
		})
	}
}

// TestReservationGivenBackOnPad: padding a chunk full (record append
// sealing it) gives its reservation back at once and keeps the padding
// sparse.
func TestReservationGivenBackOnPad(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 64 << 20, ScrubIdle: time.Hour})
	defer s.Close()
	p := bytes.Repeat([]byte("r"), 300)
	if err := s.Create(1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(1, p); err != nil {
		t.Fatal(err)
	}
	if err := s.PadTo(1, 64<<20); err != nil {
		t.Fatal(err)
	}
	if got, _ := diskBytes(t, dir); got > 4096 {
		t.Fatalf("padded chunk of 300 bytes holds %d bytes on disk, want at most 4096", got)
	}
	want := append(bytes.Clone(p), make([]byte, 64<<20-300)...)
	checkChunk(t, s, 1, want)
}

// TestReservationGivenBackAtOpen: reservations left on disk by an earlier
// process (killed, or closed before its chunks went idle) are given back
// when the store opens, before any chunk goes idle again.
func TestReservationGivenBackAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 64 << 20, ScrubIdle: time.Hour})
	const n = 20
	want := smallChunks(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := diskBytes(t, dir)
	if before <= n*4096 {
		t.Skipf("the file system reserved nothing (%d bytes for %d chunks): nothing to give back", before, n)
	}
	s = openT(t, dir, Options{ChunkSize: 64 << 20, ScrubIdle: time.Hour})
	defer s.Close()
	after, _ := diskBytes(t, dir)
	t.Logf("%d chunks: %d KiB on disk before Open, %d KiB after", n, before>>10, after>>10)
	if after > n*4096 {
		t.Fatalf("after Open the data files hold %d bytes, want at most %d", after, n*4096)
	}
	for h, p := range want {
		checkChunk(t, s, h, p)
	}
}

// TestReserveStep: a chunk reserves ahead at most as much as it holds
// (at least a block, at most growStep), so streaming chunks still grow in
// growStep extents.
func TestReserveStep(t *testing.T) {
	for _, c := range []struct{ need, step int64 }{
		{1, BlockSize}, {BlockSize, BlockSize}, {BlockSize + 1, 2 * BlockSize},
		{1 << 20, 1 << 20}, {3 << 20, 4 << 20}, {4 << 20, growStep}, {40 << 20, growStep},
	} {
		if got := reserveStep(c.need); got != c.step {
			t.Errorf("reserveStep(%d) = %d, want %d", c.need, got, c.step)
		}
	}
}
