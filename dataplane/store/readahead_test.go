package store

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestReadaheadSequential reads a chunk sequentially (which makes the store
// read ahead) while writes change bytes ahead of the reader: every read
// must return the latest data, and a corrupt block ahead must be reported
// when the reader reaches it, not before and not never.
func TestReadaheadSequential(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, size := range []int{100000, 1 << 20, 3 * BlockSize} {
		dir := t.TempDir()
		var rep corruptLog
		s := openT(t, dir, Options{ChunkSize: 8 << 20, ScrubRate: -1, OnCorrupt: rep.add})
		r := rand.New(rand.NewPCG(uint64(size), 1))
		want := randBytes(r, 6<<20+12345)
		if err := s.Create(1, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteAt(1, want, 0); err != nil {
			t.Fatal(err)
		}
		// Corrupt one block far ahead, on disk, behind the store's back.
		const badBlock = 70
		f, err := os.OpenFile(s.dataPath(1), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		flipByte(t, f, badBlock*BlockSize+5, 0x10)
		f.Close()
		buf := GetBuffer(size)
		var off int64
		for i := 0; ; i++ {
			if i%3 == 1 {
				// Change bytes just ahead of the reader.
				p := randBytes(r, 5000)
				at := min(off+int64(size)/2, int64(len(want))-5000)
				if at < badBlock*BlockSize && at+5000 > (badBlock-1)*BlockSize {
					at = off // keep the corrupt block intact
				}
				if err := s.WriteAt(1, p, at); err != nil {
					t.Fatal(err)
				}
				copy(want[at:], p)
			}
			n, err := s.ReadAt(1, buf.B, off)
			end := off + int64(n)
			if !bytes.Equal(buf.B[:n], want[off:end]) {
				t.Fatalf("size %d: read at %d differs at %d", size, off, off+int64(firstDiff(buf.B[:n], want[off:end])))
			}
			if errors.Is(err, ErrChecksum) {
				var ce *ChecksumError
				errors.As(err, &ce)
				if ce.Block != badBlock || end != badBlock*BlockSize && end > off {
					t.Fatalf("size %d: checksum error %v after reading to %d", size, err, end)
				}
				break
			}
			if err != nil {
				t.Fatalf("size %d: read at %d: %v (never reached the corrupt block)", size, off, err)
			}
			off = end
		}
		if !rep.get(1)[badBlock] {
			t.Fatalf("corrupt block not reported: %v", rep.get(1))
		}
		// Past the bad block the stream goes on, to the end.
		off = (badBlock + 1) * BlockSize
		for {
			n, err := s.ReadAt(1, buf.B, off)
			if !bytes.Equal(buf.B[:n], want[off:off+int64(n)]) {
				t.Fatalf("size %d: tail read at %d differs", size, off)
			}
			off += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if off != int64(len(want)) {
			t.Fatalf("stream ended at %d of %d", off, len(want))
		}
		PutBuffer(buf)
		// Deleting and closing with readaheads in flight.
		if _, err := s.ReadAt(1, make([]byte, 1000), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReadAt(1, make([]byte, 1000), 1000); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(1); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
