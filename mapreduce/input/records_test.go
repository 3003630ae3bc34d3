package input

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/client"
)

// rec is one record as the generator wrote it and the reader returns it.
type rec struct {
	off  int64
	data string
}

func (r rec) String() string { return fmt.Sprintf("%d:%q", r.off, r.data) }

// recFile builds a record-append file and, independently of any reader,
// the records a reader must return: the first copy of each id.
type recFile struct {
	t    testing.TB
	rng  *rand.Rand
	buf  []byte
	want []rec
	seqs map[uint64]uint64 // last sequence number per writer
	done []doneRec         // records written so far (for duplicates)
}

type doneRec struct {
	id      client.RecordID
	payload string
}

func newRecFile(t testing.TB, rng *rand.Rand) *recFile {
	return &recFile{t: t, rng: rng, seqs: map[uint64]uint64{}}
}

func (f *recFile) encode(id client.RecordID, payload string) []byte {
	b, err := client.EncodeRecord(nil, id, []byte(payload))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// payload is random text without "G", so no magic hides inside a payload.
func (f *recFile) payload() string {
	n := f.rng.IntN(300)
	if f.rng.IntN(10) == 0 {
		n = 0
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefhijk \n\x00"[f.rng.IntN(13)]
	}
	return string(b)
}

func (f *recFile) newID() client.RecordID {
	w := uint64(1 + f.rng.IntN(3))
	f.seqs[w]++
	return client.RecordID{Writer: w, Sequence: f.seqs[w]}
}

// record appends a new record and returns its framed size.
func (f *recFile) record() {
	id, p := f.newID(), f.payload()
	f.want = append(f.want, rec{int64(len(f.buf)), p})
	f.done = append(f.done, doneRec{id, p})
	f.buf = append(f.buf, f.encode(id, p)...)
}

// duplicate appends another copy of a record written before, at most back
// records ago (a retried append).
func (f *recFile) duplicate(back int) {
	if len(f.done) == 0 {
		return
	}
	d := f.done[len(f.done)-1-f.rng.IntN(min(back, len(f.done)))]
	f.buf = append(f.buf, f.encode(d.id, d.payload)...)
}

// torn appends a prefix of a record that never completed.
func (f *recFile) torn() {
	b := f.encode(f.newID(), f.payload())
	f.buf = append(f.buf, b[:1+f.rng.IntN(len(b)-1)]...)
}

func (f *recFile) zeros(n int) { f.buf = append(f.buf, make([]byte, n)...) }

func (f *recFile) garbage() {
	for n := 1 + f.rng.IntN(50); n > 0; n-- {
		f.buf = append(f.buf, byte(f.rng.IntN(256)))
	}
	if f.rng.IntN(3) == 0 {
		f.buf = append(f.buf, "GFSR"...) // a magic with nothing valid behind it
	}
}

func genRecords(t testing.TB, rng *rand.Rand) *recFile {
	f := newRecFile(t, rng)
	for n := rng.IntN(40); n > 0; n-- {
		switch p := rng.IntN(100); {
		case p < 60:
			f.record()
		case p < 72:
			f.duplicate(len(f.done))
		case p < 82:
			f.zeros(1 + rng.IntN(100))
		case p < 91:
			f.garbage()
		default:
			f.torn()
		}
	}
	return f
}

// readRecordSplits reads every split in order and returns the union of
// their records, checking each lies in its split.
func readRecordSplits(t testing.TB, r io.ReaderAt, splits []Split, lookback int64) []rec {
	t.Helper()
	var got []rec
	for _, s := range splits {
		st, err := Records(context.Background(), r, s, lookback, func(off int64, data []byte) error {
			if off < s.Offset || off >= s.End() {
				t.Fatalf("split %v returned a record at offset %d", s, off)
			}
			got = append(got, rec{off, string(data)})
			return nil
		})
		if err != nil {
			t.Fatalf("split %v: %v", s, err)
		}
		if st.Bytes < 0 || (s.FileSize > 0 && st.Bytes > s.FileSize) {
			t.Fatalf("split %v: read %d bytes", s, st.Bytes)
		}
	}
	return got
}

// scanWhole reads data with the client's scanner from offset 0.
func scanWhole(t testing.TB, data []byte) []rec {
	t.Helper()
	sc := client.NewRecordScanner(bytes.NewReader(data), 0)
	var out []rec
	for {
		r, err := sc.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec{r.Offset, string(r.Data)})
	}
}

// TestRecordsSplitsExactlyOnce: with a lookback reaching the file's start,
// any split layout returns each record once, duplicates dropped however far
// apart.
func TestRecordsSplitsExactlyOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 300 {
		f := genRecords(t, rng)
		if got := scanWhole(t, f.buf); !slices.Equal(got, f.want) {
			t.Fatalf("iter %d: the generator and the client scanner disagree:\n got %v\nwant %v", iter, got, f.want)
		}
		for _, known := range []bool{true, false} {
			var r io.ReaderAt = bytes.NewReader(f.buf)
			if iter%3 == 0 {
				r = shortReaderAt{r, 1 + rng.IntN(100)}
			}
			splits := randomLayout(rng, "r", int64(len(f.buf)), known)
			got := readRecordSplits(t, r, splits, int64(len(f.buf))+1)
			if !slices.Equal(got, f.want) {
				t.Fatalf("iter %d layout %v:\n got %v\nwant %v", iter, splits, got, f.want)
			}
		}
	}
}

// TestRecordsChunks builds files the way record appends do: records never
// cross a chunk boundary, chunk ends are zero padded, failed appends leave
// full copies or torn fragments and are retried right away, possibly into
// the next chunk. Splits are the chunks and the lookback the default.
func TestRecordsChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const chunk = 2048
	for iter := range 100 {
		f := newRecFile(t, rng)
		appendRec := func(id client.RecordID, p string) {
			b := f.encode(id, p)
			if room := chunk - len(f.buf)%chunk; len(b) > room {
				f.zeros(room) // GFS 3.3: pad the chunk, retry in the next
			}
			f.buf = append(f.buf, b...)
		}
		for n := rng.IntN(60); n > 0; n-- {
			id, p := f.newID(), f.payload()
			for {
				off := int64(len(f.buf))
				if room := chunk - len(f.buf)%chunk; client.RecordHeaderSize+len(p) > room {
					off += int64(room)
				}
				switch rng.IntN(10) {
				case 0: // torn at some replica: a fragment, then the retry
					b := f.encode(id, p)
					if room := chunk - len(f.buf)%chunk; len(b) > room {
						f.zeros(room)
					}
					f.buf = append(f.buf, b[:1+rng.IntN(len(b)-1)]...)
					continue
				case 1: // written but not acknowledged: a whole copy, then the retry
					f.want = append(f.want, rec{off, p})
					appendRec(id, p)
					appendRec(id, p)
				default:
					f.want = append(f.want, rec{off, p})
					appendRec(id, p)
				}
				break
			}
		}
		if n := len(f.buf) % chunk; n > 0 && rng.IntN(2) == 0 {
			f.zeros(chunk - n)
		}
		var splits []Split
		for off := int64(0); off < int64(len(f.buf)); off += chunk {
			splits = append(splits, Split{Path: "c", Offset: off, Length: min(chunk, int64(len(f.buf))-off), FileSize: int64(len(f.buf))})
		}
		got := readRecordSplits(t, bytes.NewReader(f.buf), splits, 0)
		if !slices.Equal(got, f.want) {
			t.Fatalf("iter %d:\n got %v\nwant %v", iter, got, f.want)
		}
	}
}

// TestRecordsLookbackLimit shows the documented limit: a duplicate whose
// first copy lies further back than the lookback is returned twice.
func TestRecordsLookbackLimit(t *testing.T) {
	f := newRecFile(t, rand.New(rand.NewPCG(7, 8)))
	a := f.encode(client.RecordID{Writer: 9, Sequence: 1}, "alpha")
	b := f.encode(client.RecordID{Writer: 9, Sequence: 2}, "bravo")
	data := slices.Concat(a, make([]byte, 1000), a, b, a)
	la := int64(len(a))
	cut := la + 1000
	splits := []Split{{Offset: 0, Length: cut}, {Offset: cut, Length: int64(len(data)) - cut}}
	within := []rec{{0, "alpha"}, {cut + la, "bravo"}}
	if got := readRecordSplits(t, bytes.NewReader(data), splits, cut); !slices.Equal(got, within) {
		t.Fatalf("lookback reaching the first copy: got %v, want %v", got, within)
	}
	if got := readRecordSplits(t, bytes.NewReader(data), splits, 0); !slices.Equal(got, []rec{{0, "alpha"}, {cut, "alpha"}, {cut + la, "bravo"}}) {
		t.Fatalf("default lookback (the second split's %d bytes): got %v, want alpha twice (first copy out of reach), the later copy in the same split dropped", len(data)-int(cut), got)
	}
}

// TestRecordsStraddle: a record starting in one split and ending in the
// next is returned by the first only, whatever the lookback.
func TestRecordsStraddle(t *testing.T) {
	f := newRecFile(t, rand.New(rand.NewPCG(9, 10)))
	a := f.encode(client.RecordID{Writer: 1, Sequence: 1}, strings.Repeat("x", 500))
	b := f.encode(client.RecordID{Writer: 1, Sequence: 2}, "b")
	data := slices.Concat(a, b)
	for _, lookback := range []int64{0, 1, 100, 1000} {
		splits := []Split{{Length: 100}, {Offset: 100, Length: int64(len(data)) - 100}}
		want := []rec{{0, strings.Repeat("x", 500)}, {int64(len(a)), "b"}}
		if got := readRecordSplits(t, bytes.NewReader(data), splits, lookback); !slices.Equal(got, want) {
			t.Fatalf("lookback %d: got %v", lookback, got)
		}
	}
}

func TestRecordsErrors(t *testing.T) {
	f := newRecFile(t, rand.New(rand.NewPCG(11, 12)))
	var data []byte
	for i := range 3000 {
		data = append(data, f.encode(client.RecordID{Writer: 1, Sequence: uint64(i + 1)}, "payload")...)
	}
	whole := Split{Path: "p", Length: int64(len(data)), FileSize: int64(len(data))}
	nop := func(int64, []byte) error { return nil }
	if _, err := Records(context.Background(), bytes.NewReader(data), Split{Offset: -1}, 0, nop); !errors.Is(err, ErrBadSplit) {
		t.Errorf("bad split: %v", err)
	}
	if _, err := Records(context.Background(), bytes.NewReader(data), whole, -1, nop); !errors.Is(err, ErrBadSplit) {
		t.Errorf("negative lookback: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	st, err := Records(context.Background(), bytes.NewReader(data), whole, 0, func(int64, []byte) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	})
	if err != stop || st.Records != 5 {
		t.Fatalf("fn error: %v after %d", err, st.Records)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Records(ctx, bytes.NewReader(data), whole, 0, nop); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	n = 0
	_, err = Records(ctx, bytes.NewReader(data), whole, 0, func(int64, []byte) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > ctxCheckRecords {
		t.Fatalf("cancelled during fn: %v after %d", err, n)
	}
	disk := errors.New("disk on fire")
	if _, err := Records(context.Background(), errAtReader{data, 10, disk}, whole, 0, nop); !errors.Is(err, disk) || !strings.Contains(err.Error(), "p[0,") {
		t.Fatalf("reader error: %v", err)
	}
	st, err = Records(context.Background(), bytes.NewReader(data), whole, 0, nop)
	if err != nil || st.Records != 3000 || st.Bytes != int64(len(data)) {
		t.Fatalf("stats %+v, %v; want 3000 records, %d bytes", st, err, len(data))
	}
}

func FuzzRecords(f *testing.F) {
	enc := func(w, s uint64, p string) []byte {
		b, _ := client.EncodeRecord(nil, client.RecordID{Writer: w, Sequence: s}, []byte(p))
		return b
	}
	a, b := enc(1, 1, "alpha"), enc(1, 2, "bravo")
	f.Add([]byte{}, uint64(0))
	f.Add(slices.Concat(a, b, a), uint64(1))
	f.Add(slices.Concat(a, make([]byte, 40), a[:20], b), uint64(2))
	f.Add(slices.Concat(enc(3, 3, string(a)), b), uint64(3)) // a record inside a payload
	f.Add([]byte("GFSR\xff\xff\xff\x00GFSR"), uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		want := scanWhole(t, data)
		for _, known := range []bool{true, false} {
			splits := randomLayout(rng, "fuzz", int64(len(data)), known)
			// Every split scans from offset 0: exactly the whole-file scan.
			if got := readRecordSplits(t, bytes.NewReader(data), splits, int64(len(data))+1); !slices.Equal(got, want) {
				t.Fatalf("layout %v:\n got %v\nwant %v", splits, got, want)
			}
			// Any lookback: no panic, records in their split (checked inside).
			readRecordSplits(t, bytes.NewReader(data), splits, rng.Int64N(int64(len(data))+1))
		}
	})
}
