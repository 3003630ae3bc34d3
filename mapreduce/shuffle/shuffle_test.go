package shuffle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// mapServer serves the map outputs in dirs (map index -> dir, attempt 1 of
// job "j") over real HTTP(S) on 127.0.0.1.
func mapServer(t *testing.T, tls bool, dirs map[int]string) *httptest.Server {
	t.Helper()
	loc := func(job string, m, a int) (string, bool) {
		if job != "j" || a != 1 {
			return "", false
		}
		d, ok := dirs[m]
		return d, ok
	}
	mux := http.NewServeMux()
	mux.Handle(ShufflePath, NewHandler(loc, nil))
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	t.Cleanup(srv.Close)
	return srv
}

// TestShuffleEndToEnd: several map outputs written with tiny sort buffers,
// every partition fetched over HTTP and HTTPS and merged, equal the model of
// all maps' pairs; with a summing combiner the summed reduce is the same.
func TestShuffleEndToEnd(t *testing.T) {
	for _, c := range []struct {
		name    string
		tls     bool
		combine bool
	}{{"plain", false, false}, {"tls-combine", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			const maps, reduces = 5, 3
			part := hashPart(reduces)
			rng := rand.New(rand.NewPCG(7, 7))
			root := t.TempDir()
			dirs := map[int]string{}
			var all [][]pair
			var stats []Stats
			for m := range maps {
				pairs := randPairs(rng, 1000+rng.IntN(1000), 400, !c.combine)
				all = append(all, pairs)
				opts := WriterOptions{Dir: filepath.Join(root, fmt.Sprint("map", m)), Reduces: reduces, Partition: part, SortBufferBytes: 3 << 10}
				if c.combine {
					opts.Combine = sumCombine
				}
				stats = append(stats, writeMap(t, opts, pairs))
				dirs[m] = opts.Dir
			}
			srv := mapServer(t, c.tls, dirs)
			want := newModel(reduces, part, all...)
			for p := range reduces {
				var runs []string
				for m := range maps {
					dst := filepath.Join(root, fmt.Sprintf("r%d-m%d.seg", p, m))
					n, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", m, 1, p, dst)
					if err != nil {
						t.Fatal(err)
					}
					if n != stats[m].PartitionBytes[p] {
						t.Fatalf("fetched %d bytes of map %d partition %d, stats say %d", n, m, p, stats[m].PartitionBytes[p])
					}
					runs = append(runs, dst)
				}
				got := map[string][]string{}
				var prev []byte
				first := true
				records, err := Merge(context.Background(), runs, MergeOptions{}, func(key []byte, vals Values) error {
					if !first && bytes.Compare(key, prev) <= 0 {
						return fmt.Errorf("key %q after %q", key, prev)
					}
					first, prev = false, append(prev[:0], key...)
					if _, dup := got[string(key)]; dup {
						return fmt.Errorf("key %q twice", key)
					}
					got[string(key)] = []string{}
					for v, ok := vals.Next(); ok; v, ok = vals.Next() {
						got[string(key)] = append(got[string(key)], string(v))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var nvals int64
				for _, vs := range got {
					nvals += int64(len(vs))
				}
				if records != nvals {
					t.Fatalf("Merge says %d records, fn saw %d", records, nvals)
				}
				if c.combine {
					equalSums(t, fmt.Sprint("partition ", p), sums(t, got), sums(t, want[p]))
				} else {
					equalGroups(t, fmt.Sprint("partition ", p), group(t, flatten(got)), want[p])
				}
			}
		})
	}
}

func flatten(g map[string][]string) []pair {
	var keys []string
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ps []pair
	for _, k := range keys {
		for _, v := range g[k] {
			ps = append(ps, pair{k, v})
		}
	}
	return ps
}

// TestFetchFlippedByte: every single flipped byte of a served segment (its
// magic, block headers, payload, end marker) makes Fetch fail with
// ErrCorrupt and leave no file behind.
func TestFetchFlippedByte(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	rng := rand.New(rand.NewPCG(1, 1))
	writeMap(t, WriterOptions{Dir: dir, Reduces: 2, Partition: hashPart(2)}, randPairs(rng, 40, 30, false))
	srv := mapServer(t, false, map[int]string{0: dir})
	exts, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, OutputName)
	orig, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "seg")
	e := exts[1]
	for i := e.Offset; i < e.Offset+e.Length; i++ {
		b := bytes.Clone(orig)
		b[i] ^= 1 << (i % 8)
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", 0, 1, 1, dst)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d of %d flipped: Fetch error %v, want ErrCorrupt", i-e.Offset, e.Length, err)
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("failed Fetch left %s", dst)
		}
	}
	// The other partition is untouched by flips in partition 1.
	if err := os.WriteFile(out, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", 0, 1, 1, dst); err != nil {
		t.Fatalf("restored output: %v", err)
	}
}

// segmentBytes returns one partition's segment as written.
func segmentBytes(t *testing.T, dir string, p int) ([]byte, Extent) {
	t.Helper()
	exts, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, OutputName))
	if err != nil {
		t.Fatal(err)
	}
	e := exts[p]
	return b[e.Offset : e.Offset+e.Length], e
}

// TestFetchTruncated: a segment cut anywhere, whether the server admits the
// shorter length or the connection ends early, is ErrCorrupt; so are extra
// bytes after the end marker, a wrong whole-segment checksum and a missing
// checksum header.
func TestFetchTruncated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	rng := rand.New(rand.NewPCG(2, 2))
	writeMap(t, WriterOptions{Dir: dir, Reduces: 1}, randPairs(rng, 30000, 5000, false)) // several blocks
	seg, ext := segmentBytes(t, dir, 0)
	if len(seg) < 3*blockTargetBytes {
		t.Fatalf("segment of %d bytes: want several blocks", len(seg))
	}
	type serve struct {
		body      []byte
		length    int // Content-Length sent
		sumHeader string
	}
	var cur serve
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cur.sumHeader != "" {
			w.Header().Set(headerChecksum, cur.sumHeader)
		}
		w.Header().Set("Content-Length", strconv.Itoa(cur.length))
		w.Write(cur.body)
	}))
	defer srv.Close()
	sum := strconv.FormatUint(ext.Checksum, 16)
	dst := filepath.Join(t.TempDir(), "seg")
	fetch := func() error {
		_, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", 0, 1, 0, dst)
		return err
	}
	cur = serve{seg, len(seg), sum}
	if err := fetch(); err != nil {
		t.Fatalf("whole segment: %v", err)
	}
	cuts := []int{0, 1, 3, 4, 10, 16, 100, blockHeaderBytes + blockTargetBytes, len(seg) / 2, len(seg) - trailerBytes - 1, len(seg) - 8, len(seg) - 1}
	for _, cut := range cuts {
		for _, honest := range []bool{true, false} {
			cur = serve{seg[:cut], len(seg), sum}
			if honest {
				cur.length = cut
			}
			if err := fetch(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("cut at %d of %d (honest length %v): %v, want ErrCorrupt", cut, len(seg), honest, err)
			}
			if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("failed Fetch left %s", dst)
			}
		}
	}
	for name, s := range map[string]serve{
		"trailing byte":  {append(bytes.Clone(seg), 0), len(seg) + 1, sum},
		"wrong checksum": {seg, len(seg), strconv.FormatUint(ext.Checksum^1, 16)},
		"no checksum":    {seg, len(seg), ""},
	} {
		cur = s
		if err := fetch(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestFetchCanceled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	writeMap(t, WriterOptions{Dir: dir, Reduces: 1}, []pair{{"a", "1"}})
	srv := mapServer(t, false, map[int]string{0: dir})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Fetch(ctx, srv.Client(), srv.URL, "j", 0, 1, 0, filepath.Join(t.TempDir(), "seg"))
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("canceled Fetch: %v", err)
	}
}

// TestHandlerBadRequests: malformed queries are 400, unknown or incomplete
// outputs 404 (Fetch: ErrNotFound), other methods 405.
func TestHandlerBadRequests(t *testing.T) {
	root := t.TempDir()
	done := filepath.Join(root, "done")
	writeMap(t, WriterOptions{Dir: done, Reduces: 2, Partition: hashPart(2)}, []pair{{"a", "1"}})
	running := filepath.Join(root, "running") // attempt known, no output yet
	w, err := NewWriter(WriterOptions{Dir: running, Reduces: 2, Partition: hashPart(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	corruptIdx := filepath.Join(root, "corrupt")
	writeMap(t, WriterOptions{Dir: corruptIdx, Reduces: 1}, []pair{{"a", "1"}})
	if err := os.WriteFile(filepath.Join(corruptIdx, IndexName), []byte("GSI1 garbage garbage garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := mapServer(t, false, map[int]string{0: done, 1: running, 2: corruptIdx})

	for _, c := range []struct {
		method, query string
		code          int
		msg           string
	}{
		{"GET", "job=j&map=0&attempt=1&part=1", 200, ""},
		{"GET", "map=0&attempt=1&part=0", 400, "missing job"},
		{"GET", "job=j&attempt=1&part=0", 400, "missing map"},
		{"GET", "job=j&map=x&attempt=1&part=0", 400, "bad map"},
		{"GET", "job=j&map=0&attempt=-1&part=0", 400, "bad attempt"},
		{"GET", "job=j&map=0&attempt=1&part=99999999999999999999", 400, "bad part"},
		{"GET", "job=j&map=0&attempt=1&part=2", 400, "out of range"},
		{"GET", "job=j&map=0&attempt=2&part=0", 404, "unknown map output"},
		{"GET", "job=k&map=0&attempt=1&part=0", 404, "unknown map output"},
		{"GET", "job=j&map=7&attempt=1&part=0", 404, "unknown map output"},
		{"GET", "job=j&map=1&attempt=1&part=0", 404, "not complete"},
		{"GET", "job=j&map=2&attempt=1&part=0", 500, "corrupt"},
		{"POST", "job=j&map=0&attempt=1&part=0", 405, "not allowed"},
	} {
		req, err := http.NewRequest(c.method, srv.URL+ShufflePath+"?"+c.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.msg) {
			t.Errorf("%s ?%s: %d %q, want %d containing %q", c.method, c.query, resp.StatusCode, body, c.code, c.msg)
		}
	}
	for _, m := range []int{1, 7} {
		_, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", m, 1, 0, filepath.Join(root, "x"))
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Fetch of map %d: %v, want ErrNotFound", m, err)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /elsewhere: %d", resp.StatusCode)
	}
	// Mounted as the whole server, the handler still answers only its path.
	rec := httptest.NewRecorder()
	NewHandler(func(string, int, int) (string, bool) { return done, true }, nil).
		ServeHTTP(rec, httptest.NewRequest("GET", "/other?job=j&map=0&attempt=1&part=0", nil))
	if rec.Code != 404 {
		t.Errorf("handler mounted at the root answered %d for another path", rec.Code)
	}
}

// TestEmptyPartitionsFetchAndMerge: partitions nobody wrote to are fetched
// as valid empty segments and merge to nothing.
func TestEmptyPartitionsFetchAndMerge(t *testing.T) {
	root := t.TempDir()
	dirs := map[int]string{}
	for m := range 3 {
		dirs[m] = filepath.Join(root, fmt.Sprint("m", m))
		writeMap(t, WriterOptions{Dir: dirs[m], Reduces: 4, Partition: func([]byte) (int, error) { return 2, nil }},
			[]pair{{"k", strconv.Itoa(m)}})
	}
	srv := mapServer(t, false, dirs)
	for p := range 4 {
		var runs []string
		for m := range 3 {
			dst := filepath.Join(root, fmt.Sprintf("p%d-m%d", p, m))
			n, err := Fetch(context.Background(), srv.Client(), srv.URL, "j", m, 1, p, dst)
			if err != nil {
				t.Fatal(err)
			}
			if (p != 2) != (n == int64(emptySegmentBytes)) {
				t.Fatalf("partition %d of map %d: %d bytes", p, m, n)
			}
			runs = append(runs, dst)
		}
		var keys []string
		records, err := Merge(context.Background(), runs, MergeOptions{}, func(key []byte, vals Values) error {
			keys = append(keys, string(key))
			return nil // values deliberately not taken
		})
		if err != nil {
			t.Fatal(err)
		}
		if p == 2 && (records != 3 || len(keys) != 1 || keys[0] != "k") || p != 2 && (records != 0 || len(keys) != 0) {
			t.Fatalf("partition %d: %d records, keys %q", p, records, keys)
		}
	}
}
