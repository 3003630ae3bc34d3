package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// sampleMetas are valid and damaged .meta files: the fuzz seed corpus (also
// written to testdata/fuzz by TestWriteFuzzCorpus) and table inputs.
func sampleMetas() [][]byte {
	h := metaHeader{Handle: 0xa1, Version: 3, Algorithm: algXXHash64, BlockSize: BlockSize, Clean: true}
	empty := encodeMeta(h, 0, nil, nil, 4)
	one := encodeMeta(h, 100, []uint64{42}, nil, 4)
	three := encodeMeta(h, 2*BlockSize+7, []uint64{1, 2, 3}, nil, 4)
	bad := encodeMeta(h, 2*BlockSize+7, []uint64{1, 2, 3}, map[int]bool{1: true}, 4)
	gap := slices.Clone(three)
	clear(gap[headerSize+entrySize : headerSize+2*entrySize])
	return [][]byte{empty, one, three, bad, gap, empty[:10], []byte("GFSCHUNK")}
}

func TestMetaRoundTrip(t *testing.T) {
	h := metaHeader{Handle: 1 << 63, Version: 1<<64 - 1, Algorithm: algXXHash64, BlockSize: BlockSize}
	sums := []uint64{5, 6, 7, 8}
	b := encodeMeta(h, 3*BlockSize+1, sums, map[int]bool{2: true}, 1024)
	m, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header != h || m.Length != 3*BlockSize+1 || !slices.Equal(m.Corrupt, []int{2}) || m.Sums[3] != 8 || m.Sums[0] != 5 {
		t.Fatalf("decoded %+v", m)
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	good := encodeMeta(metaHeader{Handle: 1, Version: 2, Algorithm: algXXHash64, BlockSize: BlockSize}, 10, []uint64{9}, nil, 1)
	mod := func(f func(b []byte)) []byte {
		b := slices.Clone(good)
		f(b)
		return b
	}
	fix := func(b []byte) { encodeHeaderCRC(b) }
	cases := map[string][]byte{
		"short":     good[:63],
		"magic":     mod(func(b []byte) { b[0] = 'X' }),
		"crc":       mod(func(b []byte) { b[24] ^= 1 }),
		"format":    mod(func(b []byte) { b[8] = 2; fix(b) }),
		"algorithm": mod(func(b []byte) { b[10] = 9; fix(b) }),
		"blocksize": mod(func(b []byte) { b[13] = 1; fix(b) }),
		"flags":     mod(func(b []byte) { b[33] = 1; fix(b) }),
		"reserved":  mod(func(b []byte) { b[40] = 1; fix(b) }),
	}
	for name, b := range cases {
		if _, err := decodeMeta(b); !errors.Is(err, errMeta) {
			t.Errorf("%s: err = %v, want errMeta", name, err)
		}
	}
	// A damaged entry is not a decode error: its block is reported.
	b := mod(func(b []byte) { b[headerSize+3] ^= 1 })
	m, err := decodeMeta(b)
	if err != nil || !slices.Equal(m.Corrupt, []int{0}) || m.Length != BlockSize {
		t.Fatalf("damaged entry: %+v, %v", m, err)
	}
}

func encodeHeaderCRC(b []byte) {
	h := b[:headerSize]
	c := crc32Castagnoli(h[:60])
	h[60], h[61], h[62], h[63] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
}

// FuzzDecodeMeta: decoding never panics, and whatever decodes re-encodes to
// something that decodes to the same chunk.
func FuzzDecodeMeta(f *testing.F) {
	for _, b := range sampleMetas() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, errMeta) {
				t.Fatalf("error not wrapping errMeta: %v", err)
			}
			return
		}
		if len(m.Sums) != blocksOf(m.Length) || m.Length > int64(len(b)-headerSize)/entrySize*BlockSize {
			t.Fatalf("length %d with %d sums from %d bytes", m.Length, len(m.Sums), len(b))
		}
		corrupt := map[int]bool{}
		for i, c := range m.Corrupt {
			if c < 0 || c >= len(m.Sums) || (i > 0 && c <= m.Corrupt[i-1]) {
				t.Fatalf("bad corrupt list %v", m.Corrupt)
			}
			corrupt[c] = true
		}
		if !bytes.Equal(encodeHeaderOnly(m.Header), b[:headerSize]) {
			t.Fatalf("header does not re-encode to the same bytes")
		}
		m2, err := decodeMeta(encodeMeta(m.Header, m.Length, m.Sums, corrupt, 0))
		if err != nil {
			t.Fatal(err)
		}
		if m2.Length != m.Length || !slices.Equal(m2.Corrupt, m.Corrupt) {
			t.Fatalf("re-decoded %+v, was %+v", m2, m)
		}
		for i := range m.Sums {
			if !corrupt[i] && m.Sums[i] != m2.Sums[i] {
				t.Fatalf("sum %d changed", i)
			}
		}
	})
}

// FuzzDecodeEntry: any 16 bytes decode to one of the three states, and a
// valid entry re-encodes to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	var e [entrySize]byte
	encodeEntry(e[:], 3, 0xdeadbeef, 100)
	f.Add(e[:], 3)
	f.Add(make([]byte, entrySize), 0)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		if len(b) < entrySize || i < 0 {
			return
		}
		sum, n, st := decodeEntry(b, i)
		if st == entryValid {
			var out [entrySize]byte
			encodeEntry(out[:], i, sum, n)
			if !bytes.Equal(out[:], b[:entrySize]) || n == 0 || n > BlockSize {
				t.Fatalf("valid entry %x does not round-trip", b[:entrySize])
			}
		}
	})
}

func encodeHeaderOnly(h metaHeader) []byte {
	b := make([]byte, headerSize)
	encodeHeader(b, h)
	return b
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecodeMeta when
// STORE_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("STORE_WRITE_CORPUS") != "1" {
		t.Skip("set STORE_WRITE_CORPUS=1 to regenerate the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeMeta")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range sampleMetas() {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edir := filepath.Join("testdata", "fuzz", "FuzzDecodeEntry")
	if err := os.MkdirAll(edir, 0o755); err != nil {
		t.Fatal(err)
	}
	var e [entrySize]byte
	encodeEntry(e[:], 3, 0xdeadbeef, 100)
	var bad [entrySize]byte
	encodeBadEntry(bad[:], 9)
	for i, seed := range []struct {
		b []byte
		i int
	}{{e[:], 3}, {make([]byte, entrySize), 0}, {bad[:], 9}} {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nint(%d)\n", seed.b, seed.i)
		if err := os.WriteFile(filepath.Join(edir, fmt.Sprintf("seed%d", i)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
