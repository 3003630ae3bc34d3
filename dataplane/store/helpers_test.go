package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// corruptLog collects OnCorrupt reports.
type corruptLog struct {
	mu   sync.Mutex
	seen map[Handle]map[int]bool
}

func (l *corruptLog) add(h Handle, blocks []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[Handle]map[int]bool{}
	}
	if l.seen[h] == nil {
		l.seen[h] = map[int]bool{}
	}
	for _, b := range blocks {
		l.seen[h][b] = true
	}
}

func (l *corruptLog) get(h Handle) map[int]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int]bool{}
	for b := range l.seen[h] {
		out[b] = true
	}
	return out
}

func openT(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// checkChunk reads all of chunk h through ReadAt and OpenRange and compares
// with want.
func checkChunk(t *testing.T, s *Store, h Handle, want []byte) {
	t.Helper()
	got := make([]byte, len(want)+100)
	n, err := s.ReadAt(h, got, 0)
	if n != len(want) || (err != io.EOF && !(err == nil && n == len(got))) {
		t.Fatalf("chunk %x: ReadAt whole = %d, %v; want %d, EOF", h, n, err, len(want))
	}
	if !bytes.Equal(got[:n], want) {
		t.Fatalf("chunk %x: content differs at byte %d", h, firstDiff(got[:n], want))
	}
	checkRange(t, s, h, want, 0, int64(len(want)))
}

func checkRange(t *testing.T, s *Store, h Handle, want []byte, off, n int64) {
	t.Helper()
	r, err := s.OpenRange(h, off, n)
	if off >= int64(len(want)) && n > 0 {
		if !errors.Is(err, io.EOF) {
			t.Fatalf("chunk %x: OpenRange(%d,%d) past end = %v, want EOF", h, off, n, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("chunk %x: OpenRange(%d,%d): %v", h, off, n, err)
	}
	defer r.Release()
	if r.Offset != off/BlockSize*BlockSize {
		t.Fatalf("range offset %d for off %d", r.Offset, off)
	}
	end := min(off+n, int64(len(want)))
	if n == 0 || end <= off {
		if r.Length != 0 {
			t.Fatalf("empty range has length %d", r.Length)
		}
		return
	}
	stop := min((end+BlockSize-1)/BlockSize*BlockSize, int64(len(want)))
	if r.Offset+r.Length != stop {
		t.Fatalf("range [%d,+%d) want end %d", r.Offset, r.Length, stop)
	}
	body := make([]byte, r.Length-int64(len(r.Tail)))
	if _, err := r.File.ReadAt(body, r.Offset); err != nil && len(body) > 0 {
		t.Fatalf("range file read: %v", err)
	}
	all := append(body, r.Tail...)
	if !bytes.Equal(all, want[r.Offset:stop]) {
		t.Fatalf("range content differs at %d", firstDiff(all, want[r.Offset:stop]))
	}
	if len(r.Sums) != int((r.Length+BlockSize-1)/BlockSize) {
		t.Fatalf("range has %d sums for %d bytes", len(r.Sums), r.Length)
	}
	for i, sum := range r.Sums {
		bs := int64(i) * BlockSize
		be := min(bs+BlockSize, r.Length)
		if xxhash.Sum64(all[bs:be]) != sum {
			t.Fatalf("range sum %d does not match data", i)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
