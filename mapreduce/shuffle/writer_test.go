package shuffle

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriterMatchesModel: random pairs through a Writer (from everything in
// memory to hundreds of spills merged in passes) give, partition by
// partition, exactly the model's sorted groups; with a summing combiner the
// sums are the same.
func TestWriterMatchesModel(t *testing.T) {
	cases := []struct {
		reduces, sortBuf, factor, n int
		combine, big                bool
		minSpills, maxSpills        int
	}{
		{reduces: 1, sortBuf: 0, n: 3000, minSpills: 1, maxSpills: 1},                                 // one in-memory buffer
		{reduces: 5, sortBuf: 0, n: 3000, combine: true, minSpills: 1, maxSpills: 1},                  // combine, no spill
		{reduces: 4, sortBuf: 2 << 10, n: 3000, minSpills: 30, maxSpills: 64},                         // many spills, one merge
		{reduces: 4, sortBuf: 2 << 10, n: 3000, combine: true, minSpills: 30, maxSpills: 64},          // combine in spills and merge
		{reduces: 3, sortBuf: 512, factor: 3, n: 2000, minSpills: 100, maxSpills: 1000},               // merge passes
		{reduces: 3, sortBuf: 512, factor: 2, n: 1500, combine: true, minSpills: 50, maxSpills: 1000}, // passes + combine
		{reduces: 2, sortBuf: 4 << 10, n: 2000, big: true, minSpills: 10, maxSpills: 1000},            // pairs bigger than the buffer and a block
		{reduces: 7, sortBuf: 40 << 10, n: 2000, combine: true, minSpills: 2, maxSpills: 2},           // two spills: no combine on merge
		{reduces: 7, sortBuf: 20 << 10, n: 2000, combine: true, minSpills: 3, maxSpills: 3},           // three: combine on merge
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_r%d_buf%d_f%d_comb%v", i, c.reduces, c.sortBuf, c.factor, c.combine), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			pairs := randPairs(rng, c.n, 300, c.big)
			part := hashPart(c.reduces)
			opts := WriterOptions{Dir: filepath.Join(t.TempDir(), "m"), Reduces: c.reduces, Partition: part,
				SortBufferBytes: c.sortBuf, MergeFactor: c.factor}
			if c.combine {
				opts.Combine = sumCombine
			}
			st := writeMap(t, opts, pairs)
			if st.Spills < c.minSpills || st.Spills > c.maxSpills {
				t.Fatalf("%d spills, want %d..%d", st.Spills, c.minSpills, c.maxSpills)
			}
			want := newModel(c.reduces, part, pairs)

			if got := dirNames(t, opts.Dir); !slices.Equal(got, []string{OutputName, IndexName}) {
				t.Fatalf("dir holds %v, want only the output and its index", got)
			}
			var bytesOut int64
			for _, p := range pairs {
				bytesOut += int64(len(p.k) + len(p.v))
			}
			if st.OutputRecords != int64(c.n) || st.OutputBytes != bytesOut {
				t.Fatalf("stats %d records %d bytes, want %d, %d", st.OutputRecords, st.OutputBytes, c.n, bytesOut)
			}
			exts, err := ReadIndex(opts.Dir)
			if err != nil {
				t.Fatal(err)
			}
			var records int64
			for p := range c.reduces {
				got := group(t, readPartition(t, opts.Dir, p))
				for k := range got {
					if q, _ := part([]byte(k)); q != p {
						t.Fatalf("key %q in partition %d, belongs in %d", k, p, q)
					}
				}
				if c.combine {
					equalSums(t, fmt.Sprint("partition ", p), sums(t, got), sums(t, want[p]))
				} else {
					equalGroups(t, fmt.Sprint("partition ", p), got, want[p])
				}
				if st.PartitionBytes[p] != exts[p].Length {
					t.Fatalf("partition %d: stats say %d bytes, index %d", p, st.PartitionBytes[p], exts[p].Length)
				}
				records += exts[p].Records
			}
			if c.combine {
				// Hadoop's rule: the combiner runs again on the merge of 3 or more spills.
				if again := st.CombineInputRecords > int64(c.n); again != (st.Spills >= 3) {
					t.Fatalf("%d spills: combine input %d records for %d emitted", st.Spills, st.CombineInputRecords, c.n)
				}
				if st.CombineInputRecords < int64(c.n) || st.CombineOutputRecords >= st.CombineInputRecords {
					t.Fatalf("combine stats in %d out %d for %d records", st.CombineInputRecords, st.CombineOutputRecords, c.n)
				}
			} else if records != int64(c.n) || st.CombineInputRecords != 0 {
				t.Fatalf("%d records in the output, want %d", records, c.n)
			}
			if st.SpilledRecords < records {
				t.Fatalf("SpilledRecords %d < %d output records", st.SpilledRecords, records)
			}
		})
	}
}

// TestWriterMemoryBound: the buffer never holds much more than
// SortBufferBytes, however many pairs go through.
func TestWriterMemoryBound(t *testing.T) {
	const bound = 64 << 10
	w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Reduces: 3, Partition: hashPart(3), SortBufferBytes: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	rng := rand.New(rand.NewPCG(1, 2))
	for i, p := range randPairs(rng, 50000, 5000, false) {
		if err := w.Emit([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
		if used := len(w.arena) + len(w.meta)*metaBytes; used > bound {
			t.Fatalf("after %d pairs buffer holds %d bytes, bound %d", i, used, bound)
		}
		if held := cap(w.arena) + cap(w.meta)*metaBytes; held > 2*bound+metaBytes {
			t.Fatalf("after %d pairs buffers hold %d bytes, bound %d", i, held, bound)
		}
	}
	if len(w.spills) < 10 {
		t.Fatalf("only %d spills", len(w.spills))
	}
}

func TestEmptyOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	st := writeMap(t, WriterOptions{Dir: dir, Reduces: 4, Partition: hashPart(4)}, nil)
	for p := range 4 {
		if st.PartitionBytes[p] != int64(emptySegmentBytes) {
			t.Fatalf("empty partition %d is %d bytes, want %d", p, st.PartitionBytes[p], emptySegmentBytes)
		}
		if ps := readPartition(t, dir, p); len(ps) != 0 {
			t.Fatalf("partition %d holds %v", p, ps)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []WriterOptions{
		{Reduces: 1},
		{Dir: dir, Reduces: 0},
		{Dir: dir, Reduces: 2},
		{Dir: dir, Reduces: 1, SortBufferBytes: -1},
		{Dir: dir, Reduces: 1, MergeFactor: 1},
	} {
		if _, err := NewWriter(o); err == nil {
			t.Errorf("NewWriter(%+v) accepted", o)
		}
	}

	t.Run("partition out of range", func(t *testing.T) {
		w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Reduces: 2, Partition: func([]byte) (int, error) { return 2, nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := w.Emit([]byte("k"), nil); !errors.Is(err, ErrPartition) {
			t.Fatalf("Emit: %v, want ErrPartition", err)
		}
	})
	t.Run("partitioner error", func(t *testing.T) {
		boom := errors.New("boom")
		w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Reduces: 2, Partition: func([]byte) (int, error) { return 0, boom }})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := w.Emit([]byte("k"), nil); !errors.Is(err, boom) {
			t.Fatalf("Emit: %v, want boom", err)
		}
	})
	t.Run("record too large", func(t *testing.T) {
		w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Reduces: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := w.Emit([]byte("k"), make([]byte, MaxRecordBytes)); !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("Emit: %v, want ErrRecordTooLarge", err)
		}
	})
	t.Run("combiner out of order", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "m")
		w, err := NewWriter(WriterOptions{Dir: dir, Reduces: 1, Combine: func(key []byte, _ Values, emit func(k, v []byte) error) error {
			return emit([]byte{byte(len(key))}, nil) // "bb" -> \x02 after "c" -> \x01: out of order
		}})
		if err != nil {
			t.Fatal(err)
		}
		w.Emit([]byte("c"), nil)
		w.Emit([]byte("bb"), nil)
		if _, err := w.Close(); !errors.Is(err, ErrCombineOrder) {
			t.Fatalf("Close: %v, want ErrCombineOrder", err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed Close left %s: %v", dir, err)
		}
	})
	t.Run("combiner changes partition", func(t *testing.T) {
		part := func(k []byte) (int, error) { return int(k[0]) % 2, nil }
		w, err := NewWriter(WriterOptions{Dir: t.TempDir(), Reduces: 2, Partition: part, Combine: func(key []byte, _ Values, emit func(k, v []byte) error) error {
			return emit(append([]byte{key[0] + 1}, key...), nil)
		}})
		if err != nil {
			t.Fatal(err)
		}
		w.Emit([]byte("a"), nil)
		if _, err := w.Close(); !errors.Is(err, ErrCombineOrder) {
			t.Fatalf("Close: %v, want ErrCombineOrder", err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "m")
		w, err := NewWriter(WriterOptions{Dir: dir, Reduces: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Emit([]byte("k"), nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("Emit after Close: %v", err)
		}
		if _, err := w.Close(); !errors.Is(err, ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		w.Abort()
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Abort left %s: %v", dir, err)
		}
	})
}

// TestAbortRemovesSpills: Abort mid-way leaves nothing, spills included.
func TestAbortRemovesSpills(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	w, err := NewWriter(WriterOptions{Dir: dir, Reduces: 2, Partition: hashPart(2), SortBufferBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range randPairs(rand.New(rand.NewPCG(3, 3)), 500, 100, false) {
		if err := w.Emit([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	if len(dirNames(t, dir)) < 3 {
		t.Fatalf("expected spills in %s, have %v", dir, dirNames(t, dir))
	}
	w.Abort()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Abort left %s: %v", dir, err)
	}
}

// TestStaleOutputRemoved: a reused directory does not serve the old output.
func TestStaleOutputRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	writeMap(t, WriterOptions{Dir: dir, Reduces: 1}, []pair{{"old", "1"}})
	w, err := NewWriter(WriterOptions{Dir: dir, Reduces: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := ReadIndex(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("index of the old output still there: %v", err)
	}
}

func TestPassWidth(t *testing.T) {
	for _, c := range []struct{ n, f, want int }{
		{3, 10, 3}, {10, 10, 10}, {11, 10, 2}, {19, 10, 10}, {20, 10, 2}, {50, 4, 2}, {5, 2, 2},
	} {
		if got := passWidth(c.n, c.f); got != c.want {
			t.Errorf("passWidth(%d, %d) = %d, want %d", c.n, c.f, got, c.want)
		}
		// Simulate: every pass after the first is full, the last merges f.
		n := c.n
		for first := true; n > c.f; first = false {
			k := passWidth(n, c.f)
			if !first && k != c.f {
				t.Errorf("n=%d f=%d: later pass of %d", c.n, c.f, k)
			}
			n -= k - 1
		}
		if c.n > c.f && n != c.f {
			t.Errorf("n=%d f=%d: last pass merges %d", c.n, c.f, n)
		}
	}
}
