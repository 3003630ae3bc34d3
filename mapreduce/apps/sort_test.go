package apps

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/mapreduce"
)

// teraRecords makes n TeraSort records: a 10-byte printable key, 89 bytes
// of payload, "\n"; some keys and some whole records repeat.
func teraRecords(rng *rand.Rand, n int) string {
	var b strings.Builder
	var prev []byte
	for range n {
		rec := make([]byte, 99)
		for i := range rec {
			rec[i] = byte(' ' + rng.IntN(95))
		}
		switch rng.IntN(20) {
		case 0:
			if prev != nil {
				rec = prev // the same record twice
			}
		case 1:
			if prev != nil {
				copy(rec, prev[:SortKeyBytes]) // the same key, other payload
			}
		}
		b.Write(rec)
		b.WriteByte('\n')
		prev = rec
	}
	return b.String()
}

// checkSorted checks the partitions concatenated are want, in order, and
// returns the partition sizes.
func checkSorted(t *testing.T, got refOutput, want []string, reduces int) []int {
	t.Helper()
	var all []string
	sizes := make([]int, reduces)
	for p := range reduces {
		if !slices.IsSorted(got[p]) {
			t.Fatalf("partition %d is not sorted", p)
		}
		all = append(all, got[p]...)
		sizes[p] = len(got[p])
	}
	if len(got) > reduces {
		t.Fatalf("%d partitions for %d reduces", len(got), reduces)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("concatenated partitions (%d lines) differ from the sorted input (%d lines)", len(all), len(want))
	}
	return sizes
}

func TestSortGloballyOrdered(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for _, reduces := range []int{1, 2, 4, 7} {
		files := map[string]string{}
		for i := range 1 + rng.IntN(4) {
			files[fmt.Sprintf("tera/part-%d", i)] = teraRecords(rng, rng.IntN(5000))
		}
		conf := mapreduce.Config{}
		got := runSequential(t, Sort, conf, files, reduces)
		checkSorted(t, got, refSorted(files), reduces)
		if _, ok := conf[ConfSortBoundaries]; ok != (reduces > 1) {
			t.Fatalf("%d reduces: boundaries in conf: %v", reduces, ok)
		}
	}
}

// TestSortBalanced: uniform keys sampled at 10 places per file give every
// reducer a fair share.
func TestSortBalanced(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	files := map[string]string{"a": teraRecords(rng, 12000), "b": teraRecords(rng, 8000)}
	const reduces = 4
	sizes := checkSorted(t, runSequential(t, Sort, mapreduce.Config{}, files, reduces), refSorted(files), reduces)
	for p, n := range sizes {
		if n < 20000/reduces/2 {
			t.Fatalf("partition sizes %v: partition %d has under half its share", sizes, p)
		}
	}
}

// TestSortConfBoundaries: the boundaries Prepare stores are what a worker
// decodes: a job rebuilt from the conf partitions every key the same way.
func TestSortConfBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	files := map[string]string{"a": teraRecords(rng, 3000)}
	const reduces = 5
	submitter, err := Sort(nil)
	if err != nil {
		t.Fatal(err)
	}
	conf := mapreduce.Config{}
	in := &memInput{files: []mapreduce.InputFile{{Path: "a", Size: int64(len(files["a"]))}}, load: func(p string) ([]byte, error) { return []byte(files[p]), nil }}
	if err := submitter.Prepare(context.Background(), in, reduces, conf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(conf[ConfSortBoundaries], ",") + 1; n != reduces-1 {
		t.Fatalf("%d boundaries for %d reduces: %q", n, reduces, conf[ConfSortBoundaries])
	}
	worker, err := Sort(conf)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, l := range refLines(files["a"]) {
		a, b := submitter.Partition([]byte(l), reduces), worker.Partition([]byte(l), reduces)
		if a != b {
			t.Fatalf("key %q: submitter partition %d, worker %d", l, a, b)
		}
		seen[a] = true
	}
	if len(seen) != reduces {
		t.Fatalf("keys fell into %d partitions of %d", len(seen), reduces)
	}
	// More boundaries than partitions (a conf from another run) still
	// stays in range and in order.
	prev := 0
	for _, k := range []string{"", " ", "5", "M", "~", "~~~~~~~~~~~~"} {
		p := worker.Partition([]byte(k), 2)
		if p < 0 || p > 1 || p < prev {
			t.Fatalf("key %q: partition %d of 2 after %d", k, p, prev)
		}
		prev = p
	}
}

// TestSortAnyLines: lines of any length, skewed keys, long lines the
// sampler cannot see whole, empty lines: still globally ordered.
func TestSortAnyLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	files := map[string]string{
		"same":  strings.Repeat("samekey\n", 500),
		"short": "b\n\na\nzz\r\nab\nabcdefghijklmnop\nabcdefghijklmnoa",
		"long":  strings.Repeat("x", 100<<10) + "\n" + strings.Repeat("y", 70<<10) + "\nm\n",
		"empty": "",
	}
	files["words"] = strings.Join(refWords(genTextFiles(rng, 1)["in/file-00.txt"]), "\n")
	for _, reduces := range []int{1, 3, 8} {
		checkSorted(t, runSequential(t, Sort, mapreduce.Config{}, files, reduces), refSorted(files), reduces)
	}
	// No input at all: no boundaries, nothing out.
	got := runSequential(t, Sort, mapreduce.Config{}, map[string]string{"e": ""}, 3)
	if len(got) != 0 {
		t.Fatalf("empty input gave %v", got)
	}
}

func TestSortRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	var file []byte
	var want []string
	for i := range 3000 {
		p := []byte(teraRecords(rng, 1)[:99])
		var err error
		if file, err = client.EncodeRecord(file, client.RecordID{Writer: 1, Sequence: uint64(i + 1)}, p); err != nil {
			t.Fatal(err)
		}
		want = append(want, string(p))
	}
	slices.Sort(want)
	conf := mapreduce.Config{ConfInput: "records"}
	got := runSequential(t, Sort, conf, map[string]string{"r": string(file)}, 3)
	sizes := checkSorted(t, got, want, 3)
	if slices.Contains(sizes, 0) {
		t.Fatalf("partition sizes %v: record sampling found no keys", sizes)
	}
}

func TestBoundariesRoundTrip(t *testing.T) {
	for _, bounds := range [][][]byte{nil, {{}, {1}}, {{0}, {0}, {1, 2}}, {[]byte("abc"), []byte("abd")}} {
		got, err := decodeBoundaries(encodeBoundaries(bounds))
		if err != nil || len(got) != len(bounds) {
			t.Fatalf("%q: got %q, %v", bounds, got, err)
		}
		for i := range got {
			if !bytes.Equal(got[i], bounds[i]) {
				t.Fatalf("%q: got %q", bounds, got)
			}
		}
	}
}

func FuzzDecodeBoundaries(f *testing.F) {
	f.Add("")
	f.Add("00,01,ff")
	f.Add("0,1")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, enc string) {
		bounds, err := decodeBoundaries(enc)
		if err != nil {
			return
		}
		if !slices.IsSortedFunc(bounds, bytes.Compare) {
			t.Fatalf("%q decoded to unsorted %q", enc, bounds)
		}
		p := &rangePartitioner{bounds: bounds}
		for _, k := range [][]byte{nil, {0}, []byte("zzzzzzzzzzzzzz")} {
			if n := p.partition(k, 3); n < 0 || n > 2 {
				t.Fatalf("partition %d", n)
			}
		}
	})
}
