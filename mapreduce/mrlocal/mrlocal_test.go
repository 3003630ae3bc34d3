package mrlocal_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/mrlocal"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countWords is this test's own app: words as the design defines them,
// counted with a combiner.
func countWords(mapreduce.Config) (*mapreduce.Job, error) {
	sum := func(ctx context.Context, key []byte, vals mapreduce.Values, emit mapreduce.Emit) error {
		n := 0
		for v, ok := vals.Next(); ok; v, ok = vals.Next() {
			k, err := strconv.Atoi(string(v))
			if err != nil {
				return err
			}
			n += k
		}
		return emit(key, []byte(strconv.Itoa(n)))
	}
	return &mapreduce.Job{
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			for _, w := range strings.FieldsFunc(string(rec.Data), func(r rune) bool { return !unicode.IsLetter(r) }) {
				if err := emit([]byte(w), []byte("1")); err != nil {
					return err
				}
			}
			return nil
		},
		Combine: sum,
		Reduce:  sum,
	}, nil
}

func startAll(t *testing.T, ctx context.Context, workers int) (*cluster.Cluster, *mrlocal.Local, *client.Client) {
	t.Helper()
	dir := t.TempDir()
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "gfs"), Chunkservers: 3, ChunkSize: 256 << 10,
		TLSDir: filepath.Join(dir, "tls"), HeartbeatInterval: 50 * time.Millisecond, DeadAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := mrlocal.Start(ctx, c, mrlocal.Options{Dir: filepath.Join(dir, "mr"), Workers: workers, Slots: 2,
		Apps: mapreduce.Apps{"count": countWords}, SortBufferBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fs, err := client.Dial(ctx, c.MasterAddr(), client.Options{TLS: c.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return c, l, fs
}

func put(t *testing.T, ctx context.Context, fs *client.Client, p string, data []byte) {
	t.Helper()
	if err := fs.Create(ctx, p, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
}

func readOutput(t *testing.T, ctx context.Context, fs *client.Client, out string, reduces int) map[string]string {
	t.Helper()
	got := map[string]string{}
	for p := range reduces {
		f, err := fs.Open(ctx, fmt.Sprintf("%s/part-r-%05d", out, p))
		if err != nil {
			t.Fatal(err)
		}
		r := f.NewReader(ctx)
		sc := bufio.NewScanner(r)
		var prev string
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "\t")
			if _, dup := got[k]; dup {
				t.Errorf("key %q twice in the output", k)
			}
			if k < prev {
				t.Errorf("partition %d: %q after %q", p, k, prev)
			}
			prev = k
			got[k] = v
		}
		r.Close()
	}
	if _, err := fs.Stat(ctx, out+"/_SUCCESS"); err != nil {
		t.Errorf("no _SUCCESS: %v", err)
	}
	return got
}

func words(rng *rand.Rand, n int) []byte {
	vocab := []string{"alpha", "beta", "gamma", "Ünïcode", "delta", "x", "naïve", "Zeta", "eta"}
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		for j := rng.IntN(12); j > 0; j-- {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			b.WriteString([]string{" ", ", ", "--", "1"}[rng.IntN(4)])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func reference(data []byte) map[string]string {
	counts := map[string]int{}
	for _, w := range strings.FieldsFunc(string(data), func(r rune) bool { return !unicode.IsLetter(r) }) {
		counts[w]++
	}
	out := map[string]string{}
	for k, v := range counts {
		out[k] = strconv.Itoa(v)
	}
	return out
}

// TestWordCountInProcess: a job over files of several chunks (lines
// crossing chunk boundaries) gives the reference counts, once each, with
// _SUCCESS, and most maps data-local.
func TestWordCountInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, l, fs := startAll(t, ctx, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := words(rng, 40000), words(rng, 300)
	put(t, ctx, fs, "/in/a.txt", a)
	put(t, ctx, fs, "/in/b.txt", b)
	put(t, ctx, fs, "/in/_ignored", []byte("hidden hidden\n"))
	mc, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	id, err := mc.Submit(ctx, mapreduce.JobRequest{App: "count", Inputs: []string{"/in"}, Output: "/out/wc", Reduces: 3})
	if err != nil {
		t.Fatal(err)
	}
	st, err := mc.Wait(ctx, id, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := readOutput(t, ctx, fs, "/out/wc", 3)
	want := reference(append(append([]byte{}, a...), b...))
	if len(got) != len(want) {
		t.Errorf("%d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("count of %q = %q, want %q", k, got[k], v)
		}
	}
	c := st.Counters
	if c.MapTasks < 3 || c.ReduceTasks != 3 || c.InputBytes != int64(len(a)+len(b)) {
		t.Errorf("counters %+v", c)
	}
	if c.DataLocalMaps+c.RackLocalMaps+c.RemoteMaps != c.MapTasks {
		t.Errorf("locality counters do not add up: %+v", c)
	}
	t.Logf("counters: %+v", c)

	// The same output again is refused, and so is a missing input.
	if _, err := mc.Submit(ctx, mapreduce.JobRequest{App: "count", Inputs: []string{"/in"}, Output: "/out/wc"}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("existing output: %v", err)
	}
	if _, err := mc.Submit(ctx, mapreduce.JobRequest{App: "count", Inputs: []string{"/nope"}, Output: "/out/x"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := mc.Submit(ctx, mapreduce.JobRequest{App: "nope", Inputs: []string{"/in"}, Output: "/out/y"}); err == nil || !strings.Contains(err.Error(), "unknown app") {
		t.Errorf("unknown app: %v", err)
	}
	if _, err := fs.Stat(ctx, "/out/x"); err == nil {
		t.Errorf("refused job left its output directory")
	}
	sts, err := mc.Status(ctx, "")
	if err != nil || len(sts) != 1 || sts[0].State != tasktable.Succeeded.String() {
		t.Errorf("status: %v %+v", err, sts)
	}
}
