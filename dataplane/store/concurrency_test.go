package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.uber.org/goleak"
)

// record returns a self-describing record for offset off: readers can check
// any record they find without knowing who wrote it.
func record(off int64, n int) []byte {
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(off))
	for i := 8; i < n; i++ {
		b[i] = byte(off>>3) ^ byte(i)
	}
	return b
}

// TestConcurrent runs appenders and readers on a shared chunk, private
// writers on their own chunks, range readers and the scrubber at once (run
// it with -race), then checks everything.
func TestConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	var rep corruptLog
	s := openT(t, dir, Options{ChunkSize: 4 << 20, ScrubRate: 256 << 20, ScrubIdle: time.Millisecond, OnCorrupt: rep.add})
	const shared = Handle(100)
	const recSize = 3000 // straddles sectors and blocks
	if err := s.Create(shared, 1); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	// Appenders: each record is written at the offset Append returns.
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				// The record names the offset the chunk had a moment
				// ago; if another appender won the race it lands
				// elsewhere, and is still checkable by its content.
				info, err := s.Info(shared)
				if err != nil {
					fail(err)
					return
				}
				if _, err := s.Append(shared, record(info.Length, recSize)); errors.Is(err, ErrChunkFull) {
					return
				} else if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	// Readers of the shared chunk: every whole record read is intact, and
	// every range agrees with its checksums.
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 50000)
			for i := 0; i < 100; i++ {
				n, err := s.ReadAt(shared, buf, 0)
				if err != nil && err != io.EOF {
					fail(err)
					return
				}
				for off := int64(0); off+recSize <= int64(n); off += recSize {
					rec := buf[off : off+recSize]
					if !bytes.Equal(rec, record(int64(binary.LittleEndian.Uint64(rec)), recSize)) {
						fail(errors.New("torn record read"))
						return
					}
				}
				r, err := s.OpenRange(shared, 0, 3*BlockSize)
				if errors.Is(err, io.EOF) {
					continue
				}
				if err != nil {
					fail(err)
					return
				}
				body := make([]byte, r.Length-int64(len(r.Tail)))
				if _, err := r.File.ReadAt(body, r.Offset); err != nil && len(body) > 0 {
					fail(err)
				}
				all := append(body, r.Tail...)
				for b, sum := range r.Sums {
					be := min(int64(b+1)*BlockSize, int64(len(all)))
					if xxhash.Sum64(all[int64(b)*BlockSize:be]) != sum {
						fail(errors.New("range data disagrees with its checksums"))
					}
				}
				r.Release()
			}
		}()
	}
	// Private writers with their own models.
	models := make([][]byte, 3)
	for w := range models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := Handle(w + 1)
			r := rand.New(rand.NewPCG(uint64(w), 9))
			if err := s.Create(h, 1); err != nil {
				fail(err)
				return
			}
			var m []byte
			for i := 0; i < 150; i++ {
				n := pickSize(r)
				off := pickOffset(r, min(int64(len(m))+BlockSize, 4<<20-int64(n)))
				p := randBytes(r, n)
				if err := s.WriteAt(h, p, off); err != nil {
					fail(err)
					return
				}
				if end := int(off) + n; end > len(m) {
					m = append(m, make([]byte, end-len(m))...)
				}
				copy(m[off:], p)
				if i%10 == 0 {
					got := make([]byte, len(m))
					if n, err := s.ReadAt(h, got, 0); n != len(m) || (err != nil && err != io.EOF) || !bytes.Equal(got, m) {
						fail(errors.New("private chunk content differs"))
						return
					}
				}
			}
			models[w] = m
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for w, m := range models {
		checkChunk(t, s, Handle(w+1), m)
	}
	// The shared chunk holds whole records at the offsets they name.
	info, _ := s.Info(shared)
	all := make([]byte, info.Length)
	if n, err := s.ReadAt(shared, all, 0); int64(n) != info.Length || (err != nil && err != io.EOF) {
		t.Fatalf("read shared: %d, %v", n, err)
	}
	for off := int64(0); off < info.Length; off += recSize {
		rec := all[off : off+recSize]
		claimed := int64(binary.LittleEndian.Uint64(rec))
		if !bytes.Equal(rec, record(claimed, recSize)) {
			t.Fatalf("record at %d is torn", off)
		}
	}
	if len(rep.seen) != 0 {
		t.Fatalf("corruption reported: %v", rep.seen)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(shared, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close = %v", err)
	}
}

// TestIdleChunksReleaseFiles: once the scrubber verified an idle chunk it
// holds no descriptors, reservation or tail buffers; the chunk still works.
func TestIdleChunksReleaseFiles(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: 1 << 30, ScrubIdle: time.Millisecond})
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 1))
	want := map[Handle][]byte{}
	for h := Handle(1); h <= 40; h++ {
		want[h] = randBytes(r, 1+r.IntN(200000))
		if err := s.Create(h, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(h, want[h]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		open := 0
		s.mu.RLock()
		for _, c := range s.chunks {
			c.mu.RLock()
			if c.data != nil || c.meta != nil || c.tail != nil || c.allocated != 0 || !c.clean {
				open++
			}
			c.mu.RUnlock()
		}
		s.mu.RUnlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks still hold files after 20 s idle", open)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for h, d := range want {
		checkChunk(t, s, h, d)
		more := randBytes(r, 777)
		if _, err := s.Append(h, more); err != nil {
			t.Fatal(err)
		}
		checkChunk(t, s, h, append(d, more...))
	}
}
