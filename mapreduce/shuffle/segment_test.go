package shuffle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func encodeSegment(t testing.TB, ps []pair) []byte {
	t.Helper()
	var buf bytes.Buffer
	var sw segmentWriter
	if err := sw.begin(&buf); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := sw.add([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	ext, err := sw.finish()
	if err != nil {
		t.Fatal(err)
	}
	if ext.Length != int64(buf.Len()) || ext.Checksum != xxhash.Sum64(buf.Bytes()) || ext.Records != int64(len(ps)) {
		t.Fatalf("extent %+v for %d bytes, %d records", ext, buf.Len(), len(ps))
	}
	return buf.Bytes()
}

// decodeAll decodes a segment from b without a testing.T: what the fuzzer
// runs.
func decodeAll(b []byte) ([]pair, error) {
	var s segmentReader
	r := bytes.NewReader(b)
	s.reset(r, "fuzz")
	var ps []pair
	for s.next() {
		ps = append(ps, pair{string(s.key), string(s.val)})
	}
	return ps, s.err
}

func TestSegmentRoundTrip(t *testing.T) {
	big := string(bytes.Repeat([]byte{7}, 3*blockTargetBytes))
	for _, ps := range [][]pair{
		nil,
		{{"", ""}},
		{{"a", "1"}, {"a", "2"}, {"b", ""}},
		{{"a", big}, {"b", "x"}, {"c", big}},
	} {
		b := encodeSegment(t, ps)
		got, err := decodeAll(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ps) {
			t.Fatalf("%d pairs back, want %d", len(got), len(ps))
		}
		for i := range ps {
			if got[i] != ps[i] {
				t.Fatalf("pair %d differs", i)
			}
		}
		if len(ps) == 0 && len(b) != emptySegmentBytes {
			t.Fatalf("empty segment of %d bytes", len(b))
		}
	}
}

// TestSegmentChecks: each check the reader makes, on a segment crafted to
// fail only that check (valid checksums around a bad entry).
func TestSegmentChecks(t *testing.T) {
	block := func(payload []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
		b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64(payload))
		return append(b, payload...)
	}
	end := func(blocks, records uint64) []byte {
		tr := binary.LittleEndian.AppendUint64(nil, blocks)
		tr = binary.LittleEndian.AppendUint64(tr, records)
		b := binary.LittleEndian.AppendUint32(nil, 0)
		b = binary.LittleEndian.AppendUint64(b, xxhash.Sum64(tr))
		return append(b, tr...)
	}
	seg := func(parts ...[]byte) []byte { return bytes.Join(append([][]byte{[]byte(segmentMagic)}, parts...), nil) }
	ab := appendEntry(appendEntry(nil, []byte("a"), []byte("1")), []byte("b"), []byte("2"))
	ba := appendEntry(appendEntry(nil, []byte("b"), []byte("1")), []byte("a"), []byte("2"))
	if _, err := decodeAll(seg(block(ab), end(1, 2))); err != nil {
		t.Fatalf("valid crafted segment: %v", err)
	}
	for name, b := range map[string][]byte{
		"order in block":     seg(block(ba), end(1, 2)),
		"order across":       seg(block(appendEntry(nil, []byte("b"), nil)), block(appendEntry(nil, []byte("a"), nil)), end(2, 2)),
		"record count":       seg(block(ab), end(1, 3)),
		"block count":        seg(block(ab), end(2, 2)),
		"entry overruns":     seg(block([]byte{5, 0, 'a'}), end(1, 1)),
		"value overruns":     seg(block([]byte{1, 9, 'a'}), end(1, 1)),
		"bad varint":         seg(block(bytes.Repeat([]byte{0xff}, 12)), end(1, 1)),
		"magic":              append([]byte("GSG2"), seg(end(0, 0))[4:]...),
		"absurd block":       seg(binary.LittleEndian.AppendUint32(nil, maxBlockBytes+1), make([]byte, 8)),
		"no end marker":      seg(block(ab)),
		"empty":              nil,
		"huge record count":  seg(end(0, 1<<63)),
		"trailer truncated":  seg(end(0, 0))[:emptySegmentBytes-3],
		"header truncated":   seg(block(ab))[:9],
		"payload truncated":  seg(block(ab))[:20],
		"lying block length": seg(binary.LittleEndian.AppendUint32(nil, 50<<20), make([]byte, 20)),
	} {
		_, err := decodeAll(b)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestLyingLengthDoesNotAllocate: a block header claiming 60 MiB in front
// of a few bytes costs about what is there, not 60 MiB.
func TestLyingLengthDoesNotAllocate(t *testing.T) {
	b := []byte(segmentMagic)
	b = binary.LittleEndian.AppendUint32(b, 60<<20)
	b = binary.LittleEndian.AppendUint64(b, 0)
	b = append(b, make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decodeAll(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%v, want ErrCorrupt", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Fatalf("decoding a lying 60 MiB header allocated %d bytes", got)
	}
}

func TestIndexChecks(t *testing.T) {
	exts := []Extent{{0, 32, 1, 0}, {32, 100, 2, 5}, {132, 40, 3, 1}}
	b := encodeIndex(exts)
	got, err := DecodeIndex(b)
	if err != nil || len(got) != 3 || got[1] != exts[1] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		if _, err := DecodeIndex(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for _, bad := range [][]Extent{
		{{0, 32, 0, 0}, {40, 32, 0, 0}}, // gap
		{{8, 32, 0, 0}},                 // not from 0
		{{0, 10, 0, 0}},                 // shorter than an empty segment
		{{0, 40, 0, 41}},                // more records than bytes
	} {
		if _, err := DecodeIndex(encodeIndex(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := DecodeIndex(b[:len(b)-1]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short index: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IndexName), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIndex(dir); !errors.Is(err, ErrCorrupt) {
		t.Errorf("oversized index: %v", err)
	}
}

func FuzzSegment(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := [][]pair{nil, {{"", ""}}, {{"a", "1"}, {"a", "2"}, {"b", "3"}}, randPairs(rng, 50, 20, false)}
	for _, ps := range seeds {
		sortPairs(ps)
		b := encodeSegment(f, ps)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte("GSG1\xff\xff\xff\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := decodeAll(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		// What decodes is sorted and survives a round trip.
		for i := 1; i < len(ps); i++ {
			if ps[i].k < ps[i-1].k {
				t.Fatalf("decoded unsorted keys %q, %q", ps[i-1].k, ps[i].k)
			}
		}
		again, err := decodeAll(encodeSegment(t, ps))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("re-encoded: %d pairs, %v", len(again), err)
		}
		// The block reader alone (what Fetch runs) agrees.
		var br blockReader
		br.reset(bytes.NewReader(b), "fuzz")
		for {
			if _, err := br.next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("block reader rejects what the segment reader took: %v", err)
			}
		}
	})
}

func FuzzIndex(f *testing.F) {
	f.Add(encodeIndex([]Extent{{0, 32, 1, 0}}))
	f.Add(encodeIndex([]Extent{{0, 32, 1, 0}, {32, 100, 2, 5}}))
	f.Add([]byte("GSI1\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		exts, err := DecodeIndex(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if !bytes.Equal(encodeIndex(exts), b) {
			t.Fatal("index does not round-trip")
		}
	})
}

func sortPairs(ps []pair) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].k < ps[j-1].k; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}
