package oplog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type state struct {
	ckpt [][]byte
	recs [][]byte
	seqs []uint64
}

func open(t testing.TB, dir string) (*Log, *state) {
	t.Helper()
	st := &state{}
	l, err := Open(dir, Options{}, Replayer{
		Checkpoint: func(rec []byte) error { st.ckpt = append(st.ckpt, bytes.Clone(rec)); return nil },
		Record: func(seq uint64, rec []byte) error {
			st.recs = append(st.recs, bytes.Clone(rec))
			st.seqs = append(st.seqs, seq)
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, st
}

func rec(i int) []byte {
	return []byte(fmt.Sprintf("record-%04d-%s", i, bytes.Repeat([]byte{byte('a' + i%26)}, i%37)))
}

func TestConcurrentCommitsReplayInOrder(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]uint64{}
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				r := rec(g*1000 + i)
				tk, err := l.Append(r)
				if err != nil {
					t.Error(err)
					return
				}
				if err := tk.Wait(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[string(r)] = tk.Seq
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	l2, st := open(t, dir)
	defer l2.Close()
	if len(st.recs) != len(acked) {
		t.Fatalf("replayed %d records, acked %d", len(st.recs), len(acked))
	}
	for i, r := range st.recs {
		if st.seqs[i] != uint64(i+1) || acked[string(r)] != st.seqs[i] {
			t.Fatalf("record %d: seq %d, acked as %d", i, st.seqs[i], acked[string(r)])
		}
	}
	if l2.Seq() != uint64(len(acked)) {
		t.Fatalf("Seq after reopen = %d", l2.Seq())
	}
}

func writeRecords(t *testing.T, dir string, n int) {
	t.Helper()
	l, _ := open(t, dir)
	for i := 0; i < n; i++ {
		if err := l.Commit(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkPrefix(t *testing.T, st *state, min, max int) int {
	t.Helper()
	if len(st.recs) < min || len(st.recs) > max {
		t.Fatalf("replayed %d records, want %d..%d", len(st.recs), min, max)
	}
	for i, r := range st.recs {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d = %q, want %q", i, r, rec(i))
		}
	}
	return len(st.recs)
}

// TestTornTail cuts the log at every offset inside the last records: replay
// yields exactly the records that are wholly present, the tail is dropped,
// and appending after recovery continues the sequence.
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	const n = 20
	writeRecords(t, src, n)
	seg := filepath.Join(src, segName(1))
	full, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Offsets where each record ends.
	ends := []int{fileHeader}
	for i := 0; i < n; i++ {
		ends = append(ends, ends[i]+frameHeader+len(rec(i)))
	}
	if ends[n] != len(full) {
		t.Fatalf("segment is %d bytes, expected %d", len(full), ends[n])
	}
	for cut := ends[n-3]; cut <= len(full); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		whole := 0
		for whole < n && ends[whole+1] <= cut {
			whole++
		}
		l, st := open(t, dir)
		checkPrefix(t, st, whole, whole)
		if err := l.Commit([]byte("after")); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l, st = open(t, dir)
		if len(st.recs) != whole+1 || string(st.recs[whole]) != "after" || st.seqs[whole] != uint64(whole+1) {
			t.Fatalf("cut %d: after re-append replayed %d records (last %q)", cut, len(st.recs), st.recs[len(st.recs)-1])
		}
		l.Close()
	}
}

// TestCorruptTail flips bytes and appends garbage in the last segment: the
// log ends before the damaged record, nothing damaged is ever returned.
func TestCorruptTail(t *testing.T) {
	src := t.TempDir()
	const n = 10
	writeRecords(t, src, n)
	full, _ := os.ReadFile(filepath.Join(src, segName(1)))
	lastStart := len(full) - frameHeader - len(rec(n-1))
	cases := map[string]func([]byte) []byte{
		"flip payload": func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b },
		"flip length":  func(b []byte) []byte { b[lastStart] ^= 0x01; return b },
		"flip seq":     func(b []byte) []byte { b[lastStart+8] ^= 0x02; return b },
		"zeros after":  func(b []byte) []byte { return append(b, make([]byte, 4096)...) },
		"huge length": func(b []byte) []byte {
			return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
		},
		"garbage after": func(b []byte) []byte { return append(b, []byte("garbage that is not a frame at all")...) },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			b := damage(bytes.Clone(full))
			os.WriteFile(filepath.Join(dir, segName(1)), b, 0o644)
			l, st := open(t, dir)
			defer l.Close()
			checkPrefix(t, st, n-1, n)
		})
	}
}

// TestCorruptSealedSegment: damage in a segment that a later one follows is
// not a torn tail; Open refuses rather than drop acknowledged records.
func TestCorruptSealedSegment(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir)
	for i := 0; i < 5; i++ {
		l.Commit(rec(i))
	}
	c, err := l.StartCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	c.Abort() // roll happened; no checkpoint
	for i := 5; i < 10; i++ {
		l.Commit(rec(i))
	}
	l.Close()
	seg := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(seg)
	b[fileHeader+frameHeader+2] ^= 0xff
	os.WriteFile(seg, b, 0o644)
	if _, err := Open(dir, Options{}, Replayer{Checkpoint: func([]byte) error { return nil }, Record: func(uint64, []byte) error { return nil }}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with damaged sealed segment = %v, want ErrCorrupt", err)
	}
}

func TestCheckpointAndFallback(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir)
	commit := func(from, to int) {
		for i := from; i < to; i++ {
			if err := l.Commit(rec(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkpoint := func(upto int) {
		c, err := l.StartCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.StartCheckpoint(); !errors.Is(err, ErrCheckpointBusy) {
			t.Fatalf("second StartCheckpoint = %v", err)
		}
		for i := 0; i < upto; i++ {
			c.Add(rec(i))
		}
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	commit(0, 10)
	checkpoint(10)
	commit(10, 15)
	checkpoint(15)
	commit(15, 20)
	l.Close()

	l, st := open(t, dir)
	if len(st.ckpt) != 15 || len(st.recs) != 5 || st.seqs[0] != 16 {
		t.Fatalf("recovered %d checkpoint + %d log records (first seq %v)", len(st.ckpt), len(st.recs), st.seqs)
	}
	l.Close()
	// The first segment is gone (only the previous checkpoint's log is kept).
	if _, err := os.Stat(filepath.Join(dir, segName(1))); !os.IsNotExist(err) {
		t.Fatalf("segment 1 still present: %v", err)
	}
	// Damage the newest checkpoint: recovery falls back to the previous one
	// and replays the log after it.
	newest := filepath.Join(dir, ckptName(15))
	b, _ := os.ReadFile(newest)
	os.WriteFile(newest, b[:len(b)-3], 0o644)
	l, st = open(t, dir)
	defer l.Close()
	all := append(st.ckpt, st.recs...)
	if len(st.ckpt) != 10 || len(all) != 20 {
		t.Fatalf("fallback recovered %d checkpoint + %d log records", len(st.ckpt), len(st.recs))
	}
	for i, r := range all {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d = %q", i, r)
		}
	}
}

func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{MaxRecordBytes: 10}, Replayer{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Append 11 bytes = %v", err)
	}
	if err := l.Commit(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
}

// FuzzReplay feeds arbitrary bytes after a valid prefix: Open never fails on
// a damaged last segment and never returns a record that was not written.
func FuzzReplay(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(appendFrame(nil, 4, []byte("x")))
	f.Add(appendFrame(nil, 3, []byte("forged")))
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		var b []byte
		var h [fileHeader]byte
		copy(h[:], segMagic)
		h[8] = 1
		b = append(b, h[:]...)
		for i := 0; i < 3; i++ {
			b = appendFrame(b, uint64(i+1), rec(i))
		}
		b = append(b, tail...)
		os.WriteFile(filepath.Join(dir, segName(1)), b, 0o644)
		var got [][]byte
		l, err := Open(dir, Options{}, Replayer{Record: func(seq uint64, r []byte) error {
			got = append(got, bytes.Clone(r))
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if len(got) < 3 {
			t.Fatalf("lost valid records: %d", len(got))
		}
		for i := 0; i < 3; i++ {
			if !bytes.Equal(got[i], rec(i)) {
				t.Fatalf("record %d = %q", i, got[i])
			}
		}
	})
}

// TestCheckpointWithConcurrentAppends: records appended while a checkpoint
// starts (before the roll is flushed) belong after the checkpoint and must
// survive recovery from it.
func TestCheckpointWithConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir)
	var tickets []Ticket
	for i := 0; i < 5; i++ {
		tk, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	c, err := l.StartCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		tk, err := l.Append(rec(i))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	for i := 0; i < int(c.Seq); i++ {
		c.Add(rec(i))
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tickets {
		if err := tk.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l, st := open(t, dir)
	defer l.Close()
	all := append(st.ckpt, st.recs...)
	if len(all) != 10 {
		t.Fatalf("recovered %d checkpoint + %d log records, want 10 in all", len(st.ckpt), len(st.recs))
	}
	for i, r := range all {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d = %q", i, r)
		}
	}
}
