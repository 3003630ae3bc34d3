package apps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/mapreduce"
)

// needCommands skips when the machine lacks a command the test's shell
// lines use (all are in Debian's base system).
func needCommands(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range append([]string{"sh"}, names...) {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("no %s: %v", n, err)
		}
	}
}

// streamConf is a streaming job's conf.
func streamConf(mapper, reducer string) mapreduce.Config {
	return mapreduce.Config{ConfMapper: mapper, ConfReducer: reducer}
}

// plainFiles makes files of ASCII lines without tabs (so cat-based jobs
// keep each line as one key).
func plainFiles(rng *rand.Rand, n int) map[string]string {
	files := map[string]string{}
	words := []string{"alpha", "beta", "gamma", "delta", "beta", "x"}
	for i := range n {
		var b strings.Builder
		for range rng.IntN(300) {
			for k := range 1 + rng.IntN(5) {
				if k > 0 {
					b.WriteString(strings.Repeat(" ", 1+rng.IntN(2)))
				}
				b.WriteString(words[rng.IntN(len(words))])
			}
			b.WriteString("\n")
		}
		files[fmt.Sprintf("s/%d", i)] = b.String()
	}
	return files
}

func TestStreamingCat(t *testing.T) {
	needCommands(t, "cat")
	rng := rand.New(rand.NewPCG(11, 11))
	files := plainFiles(rng, 3)
	for _, reducer := range []string{"cat", ""} { // "" is the identity reducer
		got := runSequential(t, Streaming, streamConf("cat", reducer), files, 3)
		equalOutput(t, got, refIdentity(files, 3))
	}
}

// TestStreamingWordCount: awk as mapper and reducer compute what a
// whitespace-splitting word count does.
func TestStreamingWordCount(t *testing.T) {
	needCommands(t, "awk")
	rng := rand.New(rand.NewPCG(12, 12))
	files := plainFiles(rng, 4)
	const reduces = 3
	mapper := `awk '{ for (i = 1; i <= NF; i++) print $i "\t1" }'`
	reducer := `awk -F '\t' '{ n[$1] += $2 } END { for (w in n) print w "\t" n[w] }'`
	got := runSequential(t, Streaming, streamConf(mapper, reducer), files, reduces)

	counts := map[string]int{}
	for _, d := range files {
		for _, w := range strings.Fields(d) {
			counts[w]++
		}
	}
	want := newRef(reduces)
	for w, n := range counts {
		want.add(w, fmt.Sprint(n))
	}
	// awk prints its counts in hash order: compare each partition as a set.
	exp := want.done()
	for p := range reduces {
		slices.Sort(got[p])
		if !slices.Equal(got[p], exp[p]) {
			t.Fatalf("partition %d: got %q, want %q", p, got[p], exp[p])
		}
	}
}

// TestStreamingProtocol: pairs split at the first tab, an empty value
// reaches the reducer as the key alone, "\r\n" output is one line, and the
// mapper sees its input file's name like Hadoop's.
func TestStreamingProtocol(t *testing.T) {
	needCommands(t, "cat", "awk")
	files := map[string]string{"dir/in": "k1\tv1\tmore\nk2\n\nk3\t\n"}
	// The reducer marks what it received, so its input format is visible.
	reducer := `awk '{ print "[" $0 "]" }'`
	got := runSequential(t, Streaming, streamConf("cat", reducer), files, 1)
	want := []string{"[]", "[k1\tv1\tmore]", "[k2]", "[k3]"}
	if !slices.Equal(got[0], want) {
		t.Fatalf("got %q, want %q", got[0], want)
	}
	got = runSequential(t, Streaming, streamConf(`printf 'a\r\nb\tc\r\n'; echo "file=$mapreduce_map_input_file"; cat >/dev/null`, ""), files, 1)
	if want := []string{"a", "b\tc", "file=dir/in"}; !slices.Equal(got[0], want) {
		t.Fatalf("got %q, want %q", got[0], want)
	}
}

func TestStreamingFailures(t *testing.T) {
	needCommands(t, "cat", "head", "tr")
	files := map[string]string{"in": strings.Repeat("some input line\n", 1000)}
	for _, tc := range []struct {
		name, mapper, reducer string
		want                  []string
	}{
		{"mapper exits 3", "exit 3", "cat", []string{`mapper command "exit 3"`, "exit status 3"}},
		{"mapper stderr", "cat >/dev/null; echo first >&2; echo 'it broke' >&2; exit 4", "cat", []string{"exit status 4", "stderr: first | it broke"}},
		{"mapper not found", "no-such-command-anywhere", "cat", []string{"exit status 127", "not found"}},
		{"reducer exits 5", "cat", "cat >/dev/null; exit 5", []string{`reducer command "cat >/dev/null; exit 5"`, "exit status 5"}},
		{"line too long", "head -c 1100000 /dev/zero | tr '\\0' a", "cat", []string{"line longer than 1048576 bytes"}},
		{"killed", "kill -9 $$", "cat", []string{"signal: killed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := trySequential(Streaming, streamConf(tc.mapper, tc.reducer), files, 1)
			if !errors.Is(err, ErrCommandFailed) {
				t.Fatalf("err %v, want ErrCommandFailed", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("err %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestStreamingEarlyExit: a mapper that stops reading and exits 0 succeeds
// with what it wrote, however much input is left (the exit status decides,
// not how far the writes got).
func TestStreamingEarlyExit(t *testing.T) {
	needCommands(t, "head")
	files := map[string]string{"big": strings.Repeat("line of input that head ignores\n", 200_000)}
	got := runSequential(t, Streaming, streamConf("head -n 2", ""), files, 1)
	if want := []string{"line of input that head ignores", "line of input that head ignores"}; !slices.Equal(got[0], want) {
		t.Fatalf("got %q", head(got[0]))
	}
}

// TestStreamingEmitError: an Emit failing (the worker's disk full) stops
// the child and fails the task with that error.
func TestStreamingEmitError(t *testing.T) {
	needCommands(t, "yes")
	job, err := Streaming(streamConf("yes", ""))
	if err != nil {
		t.Fatal(err)
	}
	m, err := job.NewMapper(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	n := 0
	emit := func(k, v []byte) error {
		if n++; n == 100 {
			return full
		}
		return nil
	}
	if err := m.Map(context.Background(), mapreduce.Record{Path: "p", Data: []byte("x")}, emit); err != nil && !errors.Is(err, full) {
		t.Fatal(err)
	}
	if err := m.Finish(context.Background(), emit); !errors.Is(err, full) {
		t.Fatalf("Finish: %v, want the emit error", err)
	}
	if n != 100 {
		t.Fatalf("emit called %d times after failing", n)
	}
}

// TestStreamingCancel: cancelling the task's context kills the child and
// what it started (a child of the shell, a pipeline, a background process
// holding stdout), and the task returns the context's error instead of
// hanging. Each command prints "ready" once its descendants exist; one
// prints the pid of a background sleep holding our pipe, which must be dead
// once Finish has seen the pipe's end.
func TestStreamingCancel(t *testing.T) {
	needCommands(t, "sleep", "cat")
	for _, mapper := range []string{
		"echo ready; sleep 1000",
		"{ echo ready; sleep 1000; } | cat",
		"sleep 1000 & echo ready $!; cat",
	} {
		t.Run(mapper, func(t *testing.T) {
			job, err := Streaming(streamConf(mapper, ""))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m, err := job.NewMapper(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ready := make(chan string, 1)
			emit := func(k, v []byte) error { // runs on the reader goroutine
				if rest, ok := strings.CutPrefix(string(k), "ready"); ok {
					ready <- strings.TrimSpace(rest)
				}
				return nil
			}
			if err := m.Map(ctx, mapreduce.Record{Data: []byte("r")}, emit); err != nil {
				t.Fatal(err)
			}
			pid := <-ready
			cancel()
			if err := m.Finish(context.Background(), emit); !errors.Is(err, context.Canceled) {
				t.Fatalf("Finish: %v, want context.Canceled", err)
			}
			if pid == "" {
				return
			}
			// Gone, or a zombie waiting for init: not running.
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err == nil {
				if _, after, _ := strings.Cut(string(stat), ") "); !strings.HasPrefix(after, "Z") {
					t.Fatalf("background sleep %s still alive: %s", pid, stat)
				}
			}
		})
	}
}

// TestStreamingNoInput: a reduce task with no keys still runs the
// reducer once (its output may not depend on input, like a header).
func TestStreamingNoInput(t *testing.T) {
	needCommands(t, "cat")
	got := runSequential(t, Streaming, streamConf("cat", "cat; echo done"), map[string]string{"empty": ""}, 2)
	if want := []string{"done"}; !slices.Equal(got[0], want) || !slices.Equal(got[1], want) {
		t.Fatalf("got %v", got)
	}
}

// TestReadPairsBound: a line of exactly the bound passes, one byte more
// fails, with or without "\r\n".
func TestReadPairsBound(t *testing.T) {
	const maxLine = 100
	ok := strings.Repeat("k", 60) + "\t" + strings.Repeat("v", 39)
	for _, out := range []string{ok, ok + "\n", ok + "\r\n", "a\n" + ok} {
		if err := readPairs(strings.NewReader(out), maxLine, func(k, v []byte) error { return nil }); err != nil {
			t.Fatalf("%d bytes: %v", len(out), err)
		}
	}
	for _, out := range []string{ok + "x", ok + "x\n", ok + "x\r\n", "a\n" + ok + "xyz"} {
		if err := readPairs(strings.NewReader(out), maxLine, func(k, v []byte) error { return nil }); err == nil || !strings.Contains(err.Error(), "longer than 100") {
			t.Fatalf("%d bytes: %v", len(out), err)
		}
	}
}

// FuzzReadPairs: any output decodes without panicking into the pairs a
// plain line split gives.
func FuzzReadPairs(f *testing.F) {
	f.Add([]byte("k\tv\nk2\n\n"))
	f.Add([]byte("a\tb\tc\r\nlast"))
	f.Add([]byte("\r\n\t\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		var got []string
		err := readPairs(bytes.NewReader(out), MaxStreamLineBytes, func(k, v []byte) error {
			if bytes.ContainsAny(k, "\t\n") || bytes.ContainsRune(v, '\n') {
				t.Fatalf("pair %q %q", k, v)
			}
			got = append(got, string(k)+"\t"+string(v))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, l := range refLines(string(out)) {
			if !strings.Contains(l, "\t") {
				l += "\t"
			}
			want = append(want, l)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
