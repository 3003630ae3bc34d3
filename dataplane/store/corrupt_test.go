package store

import (
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// corruptFixture writes chunks, closes the store cleanly, flips bytes in
// some blocks of the data files and in some checksum entries, and returns
// the blocks that must be reported, per chunk.
func corruptFixture(t *testing.T, dir string, seed uint64) (map[Handle][]byte, map[Handle]map[int]bool) {
	r := rand.New(rand.NewPCG(seed, 5))
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	data := map[Handle][]byte{}
	for h := Handle(1); h <= 4; h++ {
		n := 1 + r.IntN(1<<20)
		if h == 4 {
			n = 3 * BlockSize // ends exactly on a block boundary
		}
		data[h] = randBytes(r, n)
		if err := s.Create(h, 7); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteAt(h, data[h], 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[Handle]map[int]bool{}
	for h, d := range data {
		want[h] = map[int]bool{}
		nb := blocksOf(int64(len(d)))
		f, err := os.OpenFile(s.dataPath(h), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range r.Perm(nb)[:r.IntN(min(nb, 4)+1)] {
			bs := int64(b) * BlockSize
			pos := bs + r.Int64N(blockLen(b, int64(len(d))))
			flipByte(t, f, pos, byte(1+r.IntN(255)))
			want[h][b] = true
		}
		// A flip past the chunk's length is in no block: not reported.
		if l := int64(len(d)); l%4096 != 0 {
			flipByte(t, f, l+r.Int64N(4096-l%4096), 0x80)
		}
		f.Close()
		// A flipped checksum entry makes its block unverifiable.
		if r.IntN(2) == 0 {
			b := r.IntN(nb)
			mf, err := os.OpenFile(s.metaPath(h), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, mf, headerSize+int64(b)*entrySize+r.Int64N(entrySize), byte(1+r.IntN(255)))
			mf.Close()
			want[h][b] = true
		}
	}
	return data, want
}

func flipByte(t *testing.T, f *os.File, pos int64, x byte) {
	t.Helper()
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= x
	if _, err := f.WriteAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionReadAt(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		dir := t.TempDir()
		data, want := corruptFixture(t, dir, seed)
		var rep corruptLog
		s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1, OnCorrupt: rep.add})
		for h, d := range data {
			got := map[int]bool{}
			buf := make([]byte, BlockSize)
			for b := 0; b < blocksOf(int64(len(d))); b++ {
				bs := int64(b) * BlockSize
				n, err := s.ReadAt(h, buf, bs)
				var ce *ChecksumError
				switch {
				case errors.As(err, &ce):
					if ce.Handle != h || ce.Block != b || !errors.Is(err, ErrChecksum) || n != 0 {
						t.Fatalf("chunk %x block %d: error %v (n=%d)", h, b, err, n)
					}
					got[b] = true
				case err != nil && !(err == io.EOF && int64(n) == blockLen(b, int64(len(d)))):
					t.Fatalf("chunk %x block %d: %v", h, b, err)
				default:
					if string(buf[:n]) != string(d[bs:bs+int64(n)]) {
						t.Fatalf("chunk %x block %d: wrong data served", h, b)
					}
				}
			}
			if !maps.Equal(got, want[h]) {
				t.Fatalf("seed %d chunk %x: reads found corrupt %v, flipped %v", seed, h, got, want[h])
			}
			if !maps.Equal(rep.get(h), want[h]) {
				t.Fatalf("seed %d chunk %x: reported %v, flipped %v", seed, h, rep.get(h), want[h])
			}
			info, _ := s.Info(h)
			if info.Corrupt != (len(want[h]) > 0) {
				t.Fatalf("chunk %x: Info.Corrupt = %v with flipped %v", h, info.Corrupt, want[h])
			}
			// Writes to good blocks still work, whatever is corrupt
			// elsewhere; the corrupt blocks stay reported.
			for b := 0; b < blocksOf(int64(len(d))); b++ {
				if want[h][b] || blockLen(b, int64(len(d))) < 100 {
					continue
				}
				p := []byte("0123456789")
				at := int64(b)*BlockSize + 50
				if err := s.WriteAt(h, p, at); err != nil {
					t.Fatalf("chunk %x: write into good block %d: %v", h, b, err)
				}
				copy(d[at:], p)
				got := make([]byte, 10)
				if _, err := s.ReadAt(h, got, at); err != nil || string(got) != string(p) {
					t.Fatalf("chunk %x: read back = %q, %v", h, got, err)
				}
				break
			}
			// A read across a bad block returns the good bytes before it.
			if len(want[h]) > 0 {
				first := len(d)
				for b := range want[h] {
					first = min(first, b*BlockSize)
				}
				all := make([]byte, len(d))
				n, err := s.ReadAt(h, all, 0)
				if n != first || !errors.Is(err, ErrChecksum) || string(all[:n]) != string(d[:n]) {
					t.Fatalf("chunk %x: whole read = %d, %v; want %d bytes then checksum error", h, n, err, first)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptionScrubber(t *testing.T) {
	defer goleak.VerifyNone(t)
	for seed := uint64(11); seed <= 13; seed++ {
		dir := t.TempDir()
		data, want := corruptFixture(t, dir, seed)
		var rep corruptLog
		s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: 1 << 30, ScrubIdle: time.Millisecond, OnCorrupt: rep.add})
		deadline := time.Now().Add(20 * time.Second)
		for !allScrubbed(s) {
			if time.Now().After(deadline) {
				t.Fatal("scrubber did not verify every chunk in 20 s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Close waits for the scrubber, so its last report is in.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for h := range data {
			if !maps.Equal(rep.get(h), want[h]) {
				t.Fatalf("seed %d chunk %x: scrubber reported %v, flipped %v", seed, h, rep.get(h), want[h])
			}
		}
	}
}

func allScrubbed(s *Store) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, c := range s.chunks {
		c.mu.RLock()
		done := !c.scrubbedAt.IsZero()
		c.mu.RUnlock()
		if !done {
			return false
		}
	}
	return true
}

// TestCorruptHeader: a chunk whose header does not decode is listed as
// corrupt at version 0 (so the master treats it as stale) and serves
// nothing.
func TestCorruptHeader(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	if err := s.Create(5, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(5, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := os.OpenFile(s.metaPath(5), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, f, 25, 1) // inside the version
	f.Close()
	var rep corruptLog
	s = openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1, OnCorrupt: rep.add})
	defer s.Close()
	info, err := s.Info(5)
	if err != nil || !info.Corrupt || info.Version != 0 {
		t.Fatalf("Info = %+v, %v; want corrupt at version 0", info, err)
	}
	if !rep.get(5)[-1] {
		t.Fatalf("broken header not reported: %v", rep.get(5))
	}
	if _, err := s.ReadAt(5, make([]byte, 5), 0); !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of broken chunk = %v", err)
	}
	if _, err := s.Append(5, []byte("x")); !errors.Is(err, ErrChecksum) {
		t.Fatalf("append to broken chunk = %v", err)
	}
	if err := s.Delete(5); err != nil {
		t.Fatalf("delete of broken chunk: %v", err)
	}
}
