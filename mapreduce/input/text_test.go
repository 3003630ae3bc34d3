package input

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// line is one line as the reference and the readers see it.
type line struct {
	off  int64
	text string
}

// refLines splits data into lines the plain way, independently of the
// buffered reader: every "\n" ends a line, a trailing "\r" is dropped, the
// bytes after the last "\n" are a last line when there are any.
func refLines(data []byte) []line {
	var out []line
	start := 0
	for i, c := range data {
		if c == '\n' {
			out = append(out, line{int64(start), strings.TrimSuffix(string(data[start:i]), "\r")})
			start = i + 1
		}
	}
	if start < len(data) {
		out = append(out, line{int64(start), strings.TrimSuffix(string(data[start:]), "\r")})
	}
	return out
}

// randomLayout cuts [0, size) into consecutive splits at random points,
// zero-length splits included.
func randomLayout(rng *rand.Rand, path string, size int64, known bool) []Split {
	cuts := []int64{0, size}
	for n := rng.IntN(8); n > 0; n-- {
		cuts = append(cuts, rng.Int64N(size+1))
	}
	slices.Sort(cuts)
	var fileSize int64
	if known {
		fileSize = size
	}
	var out []Split
	for i := 0; i+1 < len(cuts); i++ {
		out = append(out, Split{Path: path, Offset: cuts[i], Length: cuts[i+1] - cuts[i], FileSize: fileSize})
	}
	return out
}

// readSplits reads every split in order and returns the union of their lines,
// checking each line lies in its split.
func readSplits(t testing.TB, f io.ReaderAt, splits []Split, bufSize, maxLine int) []line {
	t.Helper()
	var got []line
	for _, s := range splits {
		st, err := readText(context.Background(), f, s, bufSize, maxLine, func(off int64, l []byte) error {
			if off < s.Offset || off >= s.End() {
				t.Fatalf("split %v returned a line at offset %d", s, off)
			}
			got = append(got, line{off, string(l)})
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

// genText makes a file of random lines: empty lines, "\r\n" endings, "\r"
// inside lines, lines much longer than small read buffers, with or without
// a final newline.
func genText(rng *rand.Rand) []byte {
	var b bytes.Buffer
	alphabet := []string{"a", "b", " ", "\t", "\r", "é", "x", "\x00"}
	for n := rng.IntN(60); n > 0; n-- {
		var l int
		switch p := rng.IntN(100); {
		case p < 30:
			l = 0
		case p < 80:
			l = 1 + rng.IntN(20)
		case p < 95:
			l = 20 + rng.IntN(200)
		default:
			l = 200 + rng.IntN(3000)
		}
		for range l {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		if rng.IntN(4) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
	}
	if rng.IntN(2) == 0 {
		for n := rng.IntN(30); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
	}
	return b.Bytes()
}

// shortReaderAt returns at most max bytes per call with a nil error, as a
// network reader may (io.ReaderAt allows it only with an error; readers
// must cope anyway).
type shortReaderAt struct {
	r   io.ReaderAt
	max int
}

func (s shortReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > s.max {
		p = p[:s.max]
	}
	n, err := s.r.ReadAt(p, off)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func TestTextSplitsExactlyOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		data := genText(rng)
		want := refLines(data)
		for _, bufSize := range []int{1, 2, 3, 7, 64, 4096} {
			for _, known := range []bool{true, false} {
				var f io.ReaderAt = bytes.NewReader(data)
				if iter%3 == 0 {
					f = shortReaderAt{f, 1 + rng.IntN(10)}
				}
				splits := randomLayout(rng, "f", int64(len(data)), known)
				got := readSplits(t, f, splits, bufSize, 1<<20)
				if !slices.Equal(got, want) {
					t.Fatalf("iter %d buf %d known %v layout %v:\n got %v\nwant %v", iter, bufSize, known, splits, got, want)
				}
			}
		}
	}
}

func TestTextTable(t *testing.T) {
	tests := []struct {
		name string
		data string
		cuts []int64 // split boundaries inside the file
		want []line
	}{
		{"empty", "", nil, nil},
		{"empty two splits", "", []int64{0}, nil},
		{"one newline", "\n", nil, []line{{0, ""}}},
		{"no final newline", "a", nil, []line{{0, "a"}}},
		{"crlf", "a\r\n", nil, []line{{0, "a"}}},
		{"lone cr", "\r", nil, []line{{0, ""}}},
		{"only one cr dropped", "\r\r\n", nil, []line{{0, "\r"}}},
		{"cr in the middle kept", "a\rb\n", nil, []line{{0, "a\rb"}}},
		{"boundary at line start", "ab\ncd\n", []int64{3}, []line{{0, "ab"}, {3, "cd"}}},
		{"boundary on the newline", "ab\ncd\n", []int64{2}, []line{{0, "ab"}, {3, "cd"}}},
		{"boundary inside a line", "ab\ncd\n", []int64{4}, []line{{0, "ab"}, {3, "cd"}}},
		{"crlf split between cr and lf", "ab\r\ncd", []int64{3}, []line{{0, "ab"}, {4, "cd"}}},
		{"empty lines on boundaries", "\n\n\n", []int64{1, 2}, []line{{0, ""}, {1, ""}, {2, ""}}},
		{"split of nothing but a tail", "abcdef\n", []int64{2, 4}, []line{{0, "abcdef"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(len(tc.data))
			cuts := append(append([]int64{0}, tc.cuts...), size)
			var splits []Split
			for i := 0; i+1 < len(cuts); i++ {
				splits = append(splits, Split{Path: "t", Offset: cuts[i], Length: cuts[i+1] - cuts[i], FileSize: size})
			}
			got := readSplits(t, strings.NewReader(tc.data), splits, 1<<20, 1<<20)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTextRealFileLongLines uses the exported Text (1 MiB reads) on a real
// file with lines longer than the read buffer, cut into chunk-like splits.
func TestTextRealFileLongLines(t *testing.T) {
	var b bytes.Buffer
	lengths := []int{0, 5, ReadBufferBytes - 1, ReadBufferBytes, ReadBufferBytes + 1, 5 * ReadBufferBytes / 2, 0, 3}
	for i, n := range lengths {
		b.Write(bytes.Repeat([]byte{byte('a' + i)}, n))
		b.WriteString("\n")
	}
	b.WriteString("tail")
	data := b.Bytes()
	path := filepath.Join(t.TempDir(), "long.txt")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := refLines(data)
	for _, splitSize := range []int64{ReadBufferBytes, ReadBufferBytes / 3, 3 * ReadBufferBytes, int64(len(data))} {
		var got []line
		var bytesRead, records int64
		for off := int64(0); off < int64(len(data)); off += splitSize {
			s := Split{Path: path, Offset: off, Length: min(splitSize, int64(len(data))-off), FileSize: int64(len(data))}
			st, err := Text(context.Background(), f, s, func(off int64, l []byte) error {
				got = append(got, line{off, string(l)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			bytesRead += st.Bytes
			records += st.Records
		}
		if !slices.Equal(got, want) {
			t.Fatalf("split size %d: %d lines, want %d", splitSize, len(got), len(want))
		}
		if records != int64(len(want)) || bytesRead < int64(len(data)) {
			t.Fatalf("split size %d: stats %d records %d bytes, want %d records and >= %d bytes", splitSize, records, bytesRead, len(want), len(data))
		}
	}
}

func TestTextLineTooLong(t *testing.T) {
	const maxLine = 10
	ok := strings.Repeat("x", maxLine)
	for _, data := range []string{ok + "\n", ok, ok + "\nab\n", "\n" + ok[1:] + "\r\n"} {
		got := readSplits(t, strings.NewReader(data), []Split{{Path: "ok", Length: int64(len(data))}}, 3, maxLine)
		if !slices.Equal(got, refLines([]byte(data))) {
			t.Fatalf("%q: got %v", data, got)
		}
	}
	for _, bufSize := range []int{3, 1 << 10} {
		for _, data := range []string{ok + "x\n", ok + "x", "ab\n" + ok + "xyz", ok + "\r\n"} {
			_, err := readText(context.Background(), strings.NewReader(data), Split{Path: "long", Length: int64(len(data))}, bufSize, maxLine, func(int64, []byte) error { return nil })
			if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), "long") {
				t.Fatalf("buf %d %q: err %v, want ErrLineTooLong naming the file", bufSize, data, err)
			}
		}
	}
}

// errAtReader fails every read that reaches past offset at.
type errAtReader struct {
	data []byte
	at   int64
	err  error
}

func (r errAtReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.at {
		return 0, r.err
	}
	return bytes.NewReader(r.data).ReadAt(p, off)
}

func TestTextErrors(t *testing.T) {
	data := []byte(strings.Repeat("line\n", 5000))
	whole := Split{Path: "p", Length: int64(len(data)), FileSize: int64(len(data))}
	nop := func(int64, []byte) error { return nil }

	for _, s := range []Split{{Offset: -1}, {Length: -1}, {FileSize: -2}, {Offset: 1, Length: 1<<63 - 1}} {
		if _, err := Text(context.Background(), bytes.NewReader(data), s, nop); !errors.Is(err, ErrBadSplit) {
			t.Errorf("split %+v: err %v, want ErrBadSplit", s, err)
		}
	}

	stop := errors.New("stop")
	n := 0
	st, err := Text(context.Background(), bytes.NewReader(data), whole, func(int64, []byte) error {
		if n++; n == 7 {
			return stop
		}
		return nil
	})
	if err != stop || st.Records != 7 {
		t.Fatalf("fn error: got %v after %d records, want the same error after 7", err, st.Records)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Text(ctx, bytes.NewReader(data), whole, nop); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// Cancelled while fn runs: caught between reads, too.
	ctx, cancel = context.WithCancel(context.Background())
	n = 0
	_, err = Text(ctx, bytes.NewReader(data), whole, func(int64, []byte) error {
		if n++; n == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > ctxCheckRecords {
		t.Fatalf("cancelled during fn: %v after %d records", err, n)
	}

	disk := errors.New("disk on fire")
	_, err = readText(context.Background(), errAtReader{data, 100, disk}, whole, 64, 1<<20, nop)
	if !errors.Is(err, disk) || !strings.Contains(err.Error(), "p[0,") {
		t.Fatalf("reader error: %v", err)
	}
}

// TestTextFileSize: reads stop at FileSize (a file that grew since the
// split was made), and a file shorter than FileSize ends at its io.EOF.
func TestTextFileSize(t *testing.T) {
	data := []byte("aa\nbb\ncc\n")
	got := readSplits(t, bytes.NewReader(data), []Split{{Length: 4, FileSize: 4}}, 64, 100)
	if want := []line{{0, "aa"}, {3, "b"}}; !slices.Equal(got, want) {
		t.Fatalf("grown file: got %v, want %v", got, want)
	}
	got = readSplits(t, bytes.NewReader(data), []Split{{Length: 5, FileSize: 100}, {Offset: 5, Length: 95, FileSize: 100}}, 2, 100)
	if want := refLines(data); !slices.Equal(got, want) {
		t.Fatalf("shrunk file: got %v, want %v", got, want)
	}
}

func FuzzText(f *testing.F) {
	f.Add([]byte(""), uint64(0), uint8(0))
	f.Add([]byte("a\nb\r\n\nccc"), uint64(1), uint8(2))
	f.Add([]byte("\n\n\r\n\r"), uint64(7), uint8(0))
	f.Add([]byte(strings.Repeat("abc\n", 40)), uint64(99), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, buf uint8) {
		rng := rand.New(rand.NewPCG(seed, 0))
		want := refLines(data)
		for _, known := range []bool{true, false} {
			splits := randomLayout(rng, "fuzz", int64(len(data)), known)
			got := readSplits(t, bytes.NewReader(data), splits, 1+int(buf%64), 1<<20)
			if !slices.Equal(got, want) {
				t.Fatalf("layout %v:\n got %v\nwant %v", splits, got, want)
			}
		}
		// A tight line bound fails cleanly or agrees with the reference.
		maxLine := int(buf % 16)
		var got []line
		_, err := readText(context.Background(), bytes.NewReader(data), Split{Length: int64(len(data))}, 1+int(buf%7), maxLine, func(off int64, l []byte) error {
			got = append(got, line{off, string(l)})
			return nil
		})
		if err == nil {
			if !slices.Equal(got, want) {
				t.Fatalf("bound %d: got %v, want %v", maxLine, got, want)
			}
		} else if !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("bound %d: %v", maxLine, err)
		}
	})
}

func ExampleText() {
	data := "first\nsecond line\r\nthird"
	// Two splits cut inside "second line": it belongs to the first split.
	for _, s := range []Split{{Path: "f", Offset: 0, Length: 10}, {Path: "f", Offset: 10, Length: int64(len(data)) - 10}} {
		Text(context.Background(), strings.NewReader(data), s, func(off int64, l []byte) error {
			fmt.Printf("%v: %d %q\n", s, off, l)
			return nil
		})
	}
	// Output:
	// f[0,+10): 0 "first"
	// f[0,+10): 6 "second line"
	// f[10,+14): 19 "third"
}

func (l line) String() string { return fmt.Sprintf("%d:%q", l.off, l.text) }
