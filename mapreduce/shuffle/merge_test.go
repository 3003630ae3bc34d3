package shuffle

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// openFDs counts this process's open files (Linux), -1 elsewhere.
func openFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(es)
}

// mergeAll merges runs into groups, checking key order.
func mergeAll(t *testing.T, runs []string, opts MergeOptions, during func()) (map[string][]string, int64) {
	t.Helper()
	var ps []pair
	records, err := Merge(context.Background(), runs, opts, func(key []byte, vals Values) error {
		if during != nil {
			during()
		}
		for v, ok := vals.Next(); ok; v, ok = vals.Next() {
			ps = append(ps, pair{string(key), string(v)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return group(t, ps), records
}

// TestMergeManyRuns: more runs than MergeFactor are merged in passes through
// TmpDir; the result equals the model, no more than MergeFactor runs are
// open at once, the runs are left alone and TmpDir is left empty.
func TestMergeManyRuns(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	var runs []string
	var all [][]pair
	for i := range 50 {
		n := rng.IntN(300)
		if i%7 == 0 {
			n = 0 // empty runs among them
		}
		ps := randPairs(rng, n, 500, i%10 == 3)
		all = append(all, ps)
		path := filepath.Join(root, fmt.Sprint("run", i))
		writeRun(t, path, ps)
		runs = append(runs, path)
	}
	want := newModel(1, func([]byte) (int, error) { return 0, nil }, all...)[0]
	var total int64
	for _, ps := range all {
		total += int64(len(ps))
	}
	for _, factor := range []int{2, 4, 10, 64} {
		before := openFDs()
		maxOpen := 0
		got, records := mergeAll(t, runs, MergeOptions{TmpDir: tmp, MergeFactor: factor, ReadBufferBytes: 512}, func() {
			maxOpen = max(maxOpen, openFDs()-before)
		})
		equalGroups(t, fmt.Sprint("factor ", factor), got, want)
		if records != total {
			t.Fatalf("factor %d: %d records, want %d", factor, records, total)
		}
		t.Logf("factor %d: at most %d run files open in the final pass", factor, maxOpen)
		if before >= 0 && maxOpen > factor {
			t.Fatalf("factor %d: %d files open during the final pass", factor, maxOpen)
		}
		if names := dirNames(t, tmp); len(names) != 0 {
			t.Fatalf("factor %d: TmpDir holds %v", factor, names)
		}
		for i, r := range runs {
			if got := readRun(t, r); len(got) != len(all[i]) {
				t.Fatalf("run %d changed", i)
			}
		}
	}
}

// TestMergeDefaultTmpDir: without TmpDir, passes go next to the first run.
func TestMergeDefaultTmpDir(t *testing.T) {
	dir := t.TempDir()
	var runs []string
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprint("r", i))
		writeRun(t, p, []pair{{"k", fmt.Sprint(i)}})
		runs = append(runs, p)
	}
	got, _ := mergeAll(t, runs, MergeOptions{MergeFactor: 2}, nil)
	if len(got["k"]) != 5 {
		t.Fatalf("got %v", got)
	}
	if names := dirNames(t, dir); len(names) != 5 {
		t.Fatalf("dir holds %v after the merge", names)
	}
}

// TestMergePartialConsumption: values fn does not take are skipped, the
// next key still comes with all of its values.
func TestMergePartialConsumption(t *testing.T) {
	dir := t.TempDir()
	var runs []string
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprint("r", i))
		writeRun(t, p, []pair{{"a", "1"}, {"a", "2"}, {"b", "3"}, {"c", "4"}, {"c", "5"}})
		runs = append(runs, p)
	}
	seen := map[string]int{}
	records, err := Merge(context.Background(), runs, MergeOptions{}, func(key []byte, vals Values) error {
		switch string(key) {
		case "a": // take one of six
			vals.Next()
		case "c":
			for _, ok := vals.Next(); ok; _, ok = vals.Next() {
				seen["c"]++
			}
			if _, ok := vals.Next(); ok {
				return errors.New("value after the end")
			}
		}
		seen[string(key)+"-calls"]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if records != 15 || seen["c"] != 6 || seen["a-calls"] != 1 || seen["b-calls"] != 1 || seen["c-calls"] != 1 {
		t.Fatalf("records %d, seen %v", records, seen)
	}
}

func TestMergeErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeRun(t, good, randPairs(rand.New(rand.NewPCG(9, 9)), 5000, 1000, false))

	boom := errors.New("boom")
	if _, err := Merge(context.Background(), []string{good}, MergeOptions{}, func([]byte, Values) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Merge(ctx, []string{good}, MergeOptions{}, func([]byte, Values) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if _, err := Merge(context.Background(), []string{filepath.Join(dir, "missing")}, MergeOptions{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing run: %v", err)
	}
	if _, err := Merge(context.Background(), []string{good}, MergeOptions{MergeFactor: 1}, nil); err == nil {
		t.Fatal("MergeFactor 1 accepted")
	}

	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"flipped payload byte": corruptCopy(t, dir, b, func(c []byte) []byte { c[len(c)/2] ^= 0x10; return c }),
		"truncated":            corruptCopy(t, dir, b, func(c []byte) []byte { return c[:len(c)-5] }),
		"zero-length file":     empty,
	} {
		for _, factor := range []int{2, 64} { // in a pass and in the final merge
			runs := []string{good, path, good}
			_, err := Merge(context.Background(), runs, MergeOptions{MergeFactor: factor, TmpDir: t.TempDir()}, func(_ []byte, vals Values) error {
				for _, ok := vals.Next(); ok; _, ok = vals.Next() {
				}
				return nil
			})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s, factor %d: %v, want ErrCorrupt", name, factor, err)
			}
		}
	}
}

func corruptCopy(t *testing.T, dir string, b []byte, f func([]byte) []byte) string {
	t.Helper()
	p, err := os.CreateTemp(dir, "bad")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Write(f(slices.Clone(b))); err != nil {
		t.Fatal(err)
	}
	return p.Name()
}
