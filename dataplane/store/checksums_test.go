package store

import (
	"errors"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestBlockChecksums: the sums a replica hands out for comparison are the
// xxhash64 of its blocks as written (the partial tail included), follow
// overwrites and appends, survive a restart, and say when the chunk is
// known corrupt.
func TestBlockChecksums(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	r := rand.New(rand.NewPCG(7, 7))
	const h = Handle(5)
	if err := s.Create(h, 3); err != nil {
		t.Fatal(err)
	}
	want := func(d []byte) []uint64 {
		var out []uint64
		for off := 0; off < len(d); off += BlockSize {
			out = append(out, xxhash.Sum64(d[off:min(off+BlockSize, len(d))]))
		}
		return out
	}
	check := func(d []byte, corrupt bool) {
		t.Helper()
		cs, err := s.BlockChecksums(h)
		if err != nil {
			t.Fatal(err)
		}
		if cs.Version != 3 || cs.Length != int64(len(d)) || !slices.Equal(cs.Sums, want(d)) || cs.Corrupt != corrupt {
			t.Fatalf("checksums v%d length %d corrupt %v sums %x; want v3 length %d corrupt %v sums %x", cs.Version, cs.Length, cs.Corrupt, cs.Sums, len(d), corrupt, want(d))
		}
	}
	check(nil, false)
	d := randBytes(r, 2*BlockSize+777)
	if err := s.WriteAt(h, d, 0); err != nil {
		t.Fatal(err)
	}
	check(d, false)
	over := randBytes(r, 100)
	copy(d[BlockSize+5:], over)
	if err := s.WriteAt(h, over, BlockSize+5); err != nil {
		t.Fatal(err)
	}
	more := randBytes(r, 9000)
	if _, err := s.Append(h, more); err != nil {
		t.Fatal(err)
	}
	d = append(d, more...)
	check(d, false)
	// A copy: changing it does not change the store's.
	cs, _ := s.BlockChecksums(h)
	cs.Sums[0]++
	check(d, false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	defer s.Close()
	check(d, false)
	// A block found corrupt marks the chunk.
	f, err := os.OpenFile(s.dataPath(h), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, f, 10, 0xff)
	f.Close()
	if _, err := s.ReadAt(h, make([]byte, 100), 0); !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of a flipped block: %v", err)
	}
	check(d, true)
	if _, err := s.BlockChecksums(99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("checksums of a missing chunk: %v", err)
	}
}
