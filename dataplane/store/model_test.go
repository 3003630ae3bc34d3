package store

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

type modelChunk struct {
	version Version
	data    []byte
}

// pickOffset returns offsets that like to sit next to sector and block
// boundaries, where the tail and checksum logic has its edge cases.
func pickOffset(r *rand.Rand, limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	var off int64
	switch r.IntN(4) {
	case 0:
		off = r.Int64N(limit + 1)
	case 1:
		off = r.Int64N(limit/4096+1)*4096 + r.Int64N(9) - 4
	case 2:
		off = r.Int64N(limit/BlockSize+1)*BlockSize + r.Int64N(9) - 4
	default:
		off = r.Int64N(limit/512+1) * 512
	}
	return min(max(off, 0), limit)
}

func pickSize(r *rand.Rand) int {
	switch r.IntN(6) {
	case 0:
		return r.IntN(16)
	case 1:
		return 4096 + r.IntN(9) - 4
	case 2:
		return BlockSize + r.IntN(9) - 4
	case 3:
		return r.IntN(3*BlockSize + 1)
	case 4:
		return 1 << (9 + r.IntN(9)) // 512 .. 128 KiB
	default:
		return r.IntN(5000)
	}
}

// payload returns n random bytes, either in aligned pooled memory or at an
// odd address, so both the zero-copy and the staging paths run.
func payload(r *rand.Rand, n int) []byte {
	src := randBytes(r, n)
	if r.IntN(2) == 0 {
		b := GetBuffer(n) // not returned: the test keeps it simple
		copy(b.B, src)
		return b.B
	}
	buf := make([]byte, n+1)
	copy(buf[1:], src)
	return buf[1:]
}

func TestModel(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		t.Run("buffered="+strconv.FormatBool(buffered), func(t *testing.T) {
			steps := 500
			if testing.Short() {
				steps = 200
			}
			if v, _ := strconv.Atoi(os.Getenv("STORE_MODEL_STEPS")); v > 0 {
				steps = v
			}
			for seed := uint64(1); seed <= 2; seed++ {
				runModel(t, seed, steps, buffered)
			}
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int, buffered bool) {
	r := rand.New(rand.NewPCG(seed, 99))
	dir := t.TempDir()
	const chunkSize = 1 << 20
	opts := Options{ChunkSize: chunkSize, ScrubRate: -1, forceBuffered: buffered}
	s := openT(t, dir, opts)
	defer func() { s.Close() }()
	if s.Direct() == buffered {
		t.Fatalf("Direct() = %v with forceBuffered=%v", s.Direct(), buffered)
	}
	model := map[Handle]*modelChunk{}
	handles := []Handle{1, 2, 0xa1, 1 << 60}
	for step := 0; step < steps; step++ {
		h := handles[r.IntN(len(handles))]
		m := model[h]
		op := r.IntN(100)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d step %d chunk %x: "+format, append([]any{seed, step, h}, args...)...)
		}
		if m == nil && op < 90 {
			op = 0 // mostly create missing chunks
		}
		switch {
		case op < 3:
			v := Version(r.IntN(10))
			err := s.Create(h, v)
			if m != nil {
				if !errors.Is(err, ErrExists) {
					fail("Create existing = %v", err)
				}
				break
			}
			if err != nil {
				fail("Create: %v", err)
			}
			model[h] = &modelChunk{version: v}
		case op < 5:
			err := s.Delete(h)
			if m == nil {
				if !errors.Is(err, ErrNotFound) {
					fail("Delete missing = %v", err)
				}
				break
			}
			if err != nil {
				fail("Delete: %v", err)
			}
			delete(model, h)
		case m == nil:
			if _, err := s.Append(h, []byte("x")); !errors.Is(err, ErrNotFound) {
				fail("Append to missing chunk = %v", err)
			}
		case op < 30:
			n := pickSize(r)
			p := payload(r, n)
			off, err := s.Append(h, p)
			if int64(len(m.data)+n) > chunkSize {
				if !errors.Is(err, ErrChunkFull) {
					fail("Append %d at %d past end = %v", n, len(m.data), err)
				}
				break
			}
			if err != nil || off != int64(len(m.data)) {
				fail("Append %d = %d, %v; want %d", n, off, err, len(m.data))
			}
			m.data = append(m.data, p...)
		case op < 55:
			n := pickSize(r)
			limit := int64(len(m.data)) + 2*BlockSize
			if r.IntN(10) == 0 {
				limit = chunkSize
			}
			off := pickOffset(r, min(limit, chunkSize-int64(n)))
			if int64(n) > chunkSize-off {
				n = int(chunkSize - off)
			}
			p := payload(r, n)
			if err := s.WriteAt(h, p, off); err != nil {
				fail("WriteAt(%d bytes at %d): %v", n, off, err)
			}
			if n > 0 {
				if end := int(off) + n; end > len(m.data) {
					m.data = append(m.data, make([]byte, end-len(m.data))...)
				}
				copy(m.data[off:], p)
			}
		case op < 57:
			// Bad input changes nothing.
			if err := s.WriteAt(h, []byte("abc"), chunkSize-2); !errors.Is(err, ErrOutOfRange) {
				fail("WriteAt past chunk size = %v", err)
			}
			if err := s.WriteAt(h, []byte("abc"), -1); !errors.Is(err, ErrOutOfRange) {
				fail("WriteAt negative = %v", err)
			}
			if err := s.PadTo(h, chunkSize+1); !errors.Is(err, ErrOutOfRange) {
				fail("PadTo past chunk size = %v", err)
			}
			if _, err := s.ReadAt(h, make([]byte, 1), -5); !errors.Is(err, ErrOutOfRange) {
				fail("ReadAt negative = %v", err)
			}
		case op < 62:
			l := pickOffset(r, min(int64(len(m.data))+3*BlockSize, chunkSize))
			if r.IntN(4) == 0 {
				l = chunkSize
			}
			if err := s.PadTo(h, l); err != nil {
				fail("PadTo(%d): %v", l, err)
			}
			if l > int64(len(m.data)) {
				m.data = append(m.data, make([]byte, l-int64(len(m.data)))...)
			}
		case op < 66:
			v := Version(r.IntN(1000))
			if err := s.SetVersion(h, v); err != nil {
				fail("SetVersion: %v", err)
			}
			m.version = v
		case op < 68:
			if err := s.Sync(h); err != nil {
				fail("Sync: %v", err)
			}
		case op < 88:
			off := pickOffset(r, int64(len(m.data))+10)
			n := pickSize(r)
			var p []byte
			if r.IntN(2) == 0 {
				p = GetBuffer(n).B
			} else {
				p = make([]byte, n+3)[3:]
			}
			got, err := s.ReadAt(h, p, off)
			want := 0
			if off < int64(len(m.data)) {
				want = min(n, len(m.data)-int(off))
			}
			if got != want {
				fail("ReadAt(%d at %d) = %d, %v; want %d", n, off, got, err, want)
			}
			if want < n && err != io.EOF {
				fail("ReadAt short read err = %v, want EOF", err)
			}
			if want == n && err != nil {
				fail("ReadAt full read err = %v", err)
			}
			if got > 0 && !bytes.Equal(p[:got], m.data[off:off+int64(got)]) {
				fail("ReadAt(%d at %d) content differs at %d", n, off, firstDiff(p[:got], m.data[off:]))
			}
		case op < 93:
			off := pickOffset(r, int64(len(m.data))+10)
			checkRange(t, s, h, m.data, off, int64(pickSize(r)))
		case op < 95:
			info, err := s.Info(h)
			if err != nil || info != (ChunkInfo{Handle: h, Version: m.version, Length: int64(len(m.data))}) {
				fail("Info = %+v, %v; want version %d length %d", info, err, m.version, len(m.data))
			}
		default:
			if err := s.Close(); err != nil {
				fail("Close: %v", err)
			}
			s = openT(t, dir, opts)
			checkModel(t, s, model)
		}
	}
	checkModel(t, s, model)
}

func checkModel(t *testing.T, s *Store, model map[Handle]*modelChunk) {
	t.Helper()
	list := s.List()
	if len(list) != len(model) {
		t.Fatalf("List has %d chunks, model %d", len(list), len(model))
	}
	for _, ci := range list {
		m := model[ci.Handle]
		if m == nil || ci.Version != m.version || ci.Length != int64(len(m.data)) || ci.Corrupt {
			t.Fatalf("List entry %+v does not match model", ci)
		}
		checkChunk(t, s, ci.Handle, m.data)
	}
}
