package shuffle

import (
	"bytes"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type pair struct{ k, v string }

// randKey draws keys that exercise the sort: empty keys, keys sharing their
// first 8 bytes (the sort's prefix ties), bytes 0x00 and 0xff, short keys
// that are prefixes of others.
func randKey(rng *rand.Rand, keys int) string {
	switch x := rng.IntN(20); {
	case x == 0:
		return ""
	case x < 8:
		return "commonprefix-" + strconv.Itoa(rng.IntN(keys))
	default:
		const alphabet = "\x00ab\xffz"
		n := 1 + rng.IntN(4)
		b := make([]byte, n)
		seed := rng.IntN(keys)
		for i := range b {
			b[i] = alphabet[seed%len(alphabet)]
			seed /= len(alphabet)
		}
		return string(b)
	}
}

// randPairs returns n pairs with decimal values (so a summing combiner
// works); with big, some values are large (own blocks, oversized pairs).
func randPairs(rng *rand.Rand, n, keys int, big bool) []pair {
	ps := make([]pair, n)
	for i := range ps {
		ps[i] = pair{randKey(rng, keys), strconv.Itoa(rng.IntN(1000))}
		if big && rng.IntN(200) == 0 {
			ps[i].v = strconv.Itoa(rng.IntN(9)+1) + string(bytes.Repeat([]byte("0"), 70<<10+rng.IntN(1000)))
		}
	}
	return ps
}

func hashPart(r int) func([]byte) (int, error) {
	return func(k []byte) (int, error) {
		h := fnv.New32a()
		h.Write(k)
		return int(h.Sum32() % uint32(r)), nil
	}
}

// model groups pairs by partition and key, values sorted.
type model []map[string][]string

func newModel(r int, part func([]byte) (int, error), pairs ...[]pair) model {
	m := make(model, r)
	for i := range m {
		m[i] = map[string][]string{}
	}
	for _, ps := range pairs {
		for _, p := range ps {
			i, _ := part([]byte(p.k))
			m[i][p.k] = append(m[i][p.k], p.v)
		}
	}
	for _, g := range m {
		for _, vs := range g {
			slices.Sort(vs)
		}
	}
	return m
}

// sums is what a summing reduce makes of one partition's groups.
func sums(t *testing.T, g map[string][]string) map[string]int64 {
	t.Helper()
	out := make(map[string]int64, len(g))
	for k, vs := range g {
		for _, v := range vs {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("value %.20q of %q: %v", v, k, err)
			}
			out[k] += n
		}
	}
	return out
}

func sumCombine(key []byte, vals Values, emit func(k, v []byte) error) error {
	var s int64
	for v, ok := vals.Next(); ok; v, ok = vals.Next() {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return err
		}
		s += n
	}
	return emit(key, strconv.AppendInt(nil, s, 10))
}

// group checks pairs are sorted and groups them like the model.
func group(t *testing.T, ps []pair) map[string][]string {
	t.Helper()
	g := map[string][]string{}
	for i, p := range ps {
		if i > 0 && p.k < ps[i-1].k {
			t.Fatalf("key %q after %q: not sorted", p.k, ps[i-1].k)
		}
		g[p.k] = append(g[p.k], p.v)
	}
	for _, vs := range g {
		slices.Sort(vs)
	}
	return g
}

func equalGroups(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		if g := got[k]; !slices.Equal(g, w) {
			t.Fatalf("%s: key %q: %d values, want %d (equal contents: false)", what, k, len(g), len(w))
		}
	}
}

func equalSums(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s: key %q sums to %d, want %d", what, k, got[k], w)
		}
	}
}

// decodeSegment reads one whole segment from r and checks nothing follows.
func decodeSegment(t *testing.T, r io.Reader, name string) []pair {
	t.Helper()
	var s segmentReader
	s.reset(r, name)
	var ps []pair
	for s.next() {
		ps = append(ps, pair{string(s.key), string(s.val)})
	}
	if s.err != nil {
		t.Fatalf("decode %s: %v", name, s.err)
	}
	if n, _ := r.Read(make([]byte, 1)); n != 0 {
		t.Fatalf("decode %s: bytes after the end marker", name)
	}
	return ps
}

// readPartition decodes partition p of the map output in dir.
func readPartition(t *testing.T, dir string, p int) []pair {
	t.Helper()
	exts, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, OutputName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return decodeSegment(t, io.NewSectionReader(f, exts[p].Offset, exts[p].Length), f.Name())
}

func readRun(t *testing.T, path string) []pair {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return decodeSegment(t, f, path)
}

// writeMap runs one Writer over pairs.
func writeMap(t *testing.T, opts WriterOptions, pairs []pair) Stats {
	t.Helper()
	w, err := NewWriter(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if err := w.Emit([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeRun writes pairs (sorted here) as one segment file.
func writeRun(t *testing.T, path string, pairs []pair) {
	t.Helper()
	ps := slices.Clone(pairs)
	slices.SortFunc(ps, func(a, b pair) int { return bytes.Compare([]byte(a.k), []byte(b.k)) })
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var sw segmentWriter
	if err := sw.begin(f); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := sw.add([]byte(p.k), []byte(p.v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sw.finish(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
