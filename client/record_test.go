package client

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func mustRecord(t testing.TB, w, s uint64, payload string) []byte {
	t.Helper()
	b, err := EncodeRecord(nil, RecordID{w, s}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type wantRec struct {
	id   RecordID
	off  int64
	data string
}

func readAll(t testing.TB, r io.Reader, maxPayload int) []wantRec {
	t.Helper()
	rr := NewRecordScanner(r, maxPayload)
	var got []wantRec
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		got = append(got, wantRec{rec.ID, rec.Offset, string(rec.Data)})
	}
}

func TestRecordReaderTable(t *testing.T) {
	a := mustRecord(t, 1, 1, "alpha")
	b := mustRecord(t, 1, 2, "bravo")
	c := mustRecord(t, 2, 1, "")
	big := mustRecord(t, 3, 7, string(bytes.Repeat([]byte("x"), 3*recordReadSize)))
	zeros := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	corrupt := func(rec []byte, i int) []byte {
		c := bytes.Clone(rec)
		c[i] ^= 0x40
		return c
	}
	la := int64(len(a))
	outer := mustRecord(t, 4, 4, string(b))
	tests := []struct {
		name string
		file []byte
		want []wantRec
	}{
		{"empty", nil, nil},
		{"only padding", zeros(1000), nil},
		{"one", a, []wantRec{{RecordID{1, 1}, 0, "alpha"}}},
		{"empty payload", c, []wantRec{{RecordID{2, 1}, 0, ""}}},
		{"two", cat(a, b), []wantRec{{RecordID{1, 1}, 0, "alpha"}, {RecordID{1, 2}, la, "bravo"}}},
		{"padding between", cat(a, zeros(77), b), []wantRec{{RecordID{1, 1}, 0, "alpha"}, {RecordID{1, 2}, la + 77, "bravo"}}},
		{"leading padding", cat(zeros(5), a), []wantRec{{RecordID{1, 1}, 5, "alpha"}}},
		{"duplicate dropped", cat(a, b, a), []wantRec{{RecordID{1, 1}, 0, "alpha"}, {RecordID{1, 2}, la, "bravo"}}},
		{"duplicate after padding", cat(a, zeros(9), a, b), []wantRec{{RecordID{1, 1}, 0, "alpha"}, {RecordID{1, 2}, 2*la + 9, "bravo"}}},
		{"torn fragment then record", cat(a[:20], b), []wantRec{{RecordID{1, 2}, 20, "bravo"}}},
		{"torn header then record", cat(a[:6], b), []wantRec{{RecordID{1, 2}, 6, "bravo"}}},
		{"torn tail", cat(a, b[:len(b)-1]), []wantRec{{RecordID{1, 1}, 0, "alpha"}}},
		{"torn tail magic only", cat(a, b[:4]), []wantRec{{RecordID{1, 1}, 0, "alpha"}}},
		{"torn tail partial magic", cat(a, b[:2]), []wantRec{{RecordID{1, 1}, 0, "alpha"}}},
		{"bad payload checksum", cat(corrupt(a, len(a)-1), b), []wantRec{{RecordID{1, 2}, la, "bravo"}}},
		{"bad length", cat(corrupt(a, 4), b), []wantRec{{RecordID{1, 2}, la, "bravo"}}},
		{"bad id", cat(corrupt(a, 9), b), []wantRec{{RecordID{1, 2}, la, "bravo"}}},
		{"huge length claimed", cat([]byte{'G', 'F', 'S', 'R', 0xff, 0xff, 0xff, 0x7f}, b), []wantRec{{RecordID{1, 2}, 8, "bravo"}}},
		{"garbage around", cat([]byte("garbage GFS"), a, []byte("GFSRGFSR"), b), []wantRec{{RecordID{1, 1}, 11, "alpha"}, {RecordID{1, 2}, 11 + la + 8, "bravo"}}},
		{"overwritten by zeros", cat(a[:10], zeros(len(a)-10), b), []wantRec{{RecordID{1, 2}, la, "bravo"}}},
		{"big record spanning reads", cat(a, big, b), []wantRec{{RecordID{1, 1}, 0, "alpha"}, {RecordID{3, 7}, la, string(big[RecordHeaderSize:])}, {RecordID{1, 2}, la + int64(len(big)), "bravo"}}},
		{"record embedded in a torn one", cat(outer[:len(outer)-1], a), []wantRec{{RecordID{1, 1}, int64(len(outer)) - 1, "alpha"}}},
		{"record embedded in a bad one", cat(corrupt(outer, 30), a), []wantRec{{RecordID{1, 2}, RecordHeaderSize, "bravo"}, {RecordID{1, 1}, int64(len(outer)), "alpha"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "onebyte", "half"} {
				var r io.Reader = bytes.NewReader(tc.file)
				switch mode {
				case "onebyte":
					if len(tc.file) > 1<<16 {
						continue
					}
					r = iotest.OneByteReader(r)
				case "half":
					r = iotest.HalfReader(r)
				}
				got := readAll(t, r, 0)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					if len(fmt.Sprint(got)) > 400 {
						t.Fatalf("%s: got %d records, want %d", mode, len(got), len(tc.want))
					}
					t.Fatalf("%s:\n got %v\nwant %v", mode, got, tc.want)
				}
			}
		})
	}
}

func TestEncodeRecordTooLarge(t *testing.T) {
	_, err := EncodeRecord(nil, RecordID{1, 1}, make([]byte, MaxRecordPayload+1))
	if !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("err = %v, want ErrRecordTooLarge", err)
	}
}

func TestRecordReaderMaxPayload(t *testing.T) {
	a := mustRecord(t, 1, 1, "0123456789")
	if got := readAll(t, bytes.NewReader(a), 9); len(got) != 0 {
		t.Fatalf("record longer than maxPayload accepted: %v", got)
	}
	if got := readAll(t, bytes.NewReader(a), 10); len(got) != 1 {
		t.Fatalf("record of maxPayload rejected: %v", got)
	}
}

func TestRecordReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	a := mustRecord(t, 1, 1, "alpha")
	rr := NewRecordScanner(io.MultiReader(bytes.NewReader(a), iotest.ErrReader(boom)), 0)
	if _, err := rr.Next(); err != nil {
		t.Fatalf("first record: %v", err)
	}
	if _, err := rr.Next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

// TestRecordReaderRandomFiles builds files the way concurrent appenders with
// failures and retries do (records, duplicates, torn fragments, padding,
// garbage) and checks every record comes back exactly once in order of
// first occurrence.
func TestRecordReaderRandomFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 200; iter++ {
		var file []byte
		var want []wantRec
		seen := map[RecordID]bool{}
		var written [][]byte
		for i := 0; i < rng.IntN(50); i++ {
			switch k := rng.IntN(10); {
			case k < 5:
				id := RecordID{rng.Uint64N(4) + 1, uint64(i + 1)}
				if seen[id] {
					continue
				}
				payload := make([]byte, rng.IntN(300))
				for j := range payload {
					payload[j] = byte(rng.IntN(256))
				}
				rec, _ := EncodeRecord(nil, id, payload)
				want = append(want, wantRec{id, int64(len(file)), string(payload)})
				seen[id] = true
				written = append(written, rec)
				file = append(file, rec...)
			case k < 7 && len(written) > 0:
				file = append(file, written[rng.IntN(len(written))]...) // retry duplicate
			case k < 8:
				file = append(file, make([]byte, rng.IntN(100))...) // padding
			default:
				// torn fragment of a record never acknowledged
				rec, _ := EncodeRecord(nil, RecordID{99, uint64(i)}, bytes.Repeat([]byte{byte(i + 1)}, 50))
				file = append(file, rec[:rng.IntN(len(rec)-1)]...)
			}
		}
		got := readAll(t, iotest.HalfReader(bytes.NewReader(file)), 0)
		// Torn fragments may only hide nothing: records of writer 99 never
		// appear whole, so the result must equal want exactly.
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("iteration %d:\n got %v\nwant %v", iter, got, want)
		}
	}
}

// FuzzRecordReader feeds arbitrary bytes: the reader must not panic, must
// return only records whose framing verifies, and never the same id twice.
func FuzzRecordReader(f *testing.F) {
	a, _ := EncodeRecord(nil, RecordID{1, 1}, []byte("alpha"))
	b, _ := EncodeRecord(nil, RecordID{1, 2}, []byte("bravo"))
	f.Add(a)
	f.Add(append(append(bytes.Clone(a), 0, 0, 0), b...))
	f.Add(append(bytes.Clone(a[:10]), b...))
	f.Add([]byte("GFSR\x05\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := NewRecordScanner(bytes.NewReader(data), 1<<16)
		seen := map[RecordID]bool{}
		for {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if seen[rec.ID] {
				t.Fatalf("id %v returned twice", rec.ID)
			}
			seen[rec.ID] = true
			end := rec.Offset + RecordHeaderSize + int64(len(rec.Data))
			if rec.Offset < 0 || end > int64(len(data)) {
				t.Fatalf("record at %d..%d outside input of %d bytes", rec.Offset, end, len(data))
			}
			re, _ := EncodeRecord(nil, rec.ID, rec.Data)
			if !bytes.Equal(re, data[rec.Offset:end]) {
				t.Fatalf("record at %d does not re-encode to the input bytes", rec.Offset)
			}
		}
	})
}
