package apps

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/gfs-go/gfs/mapreduce"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The references below compute each app's expected output directly from
// the input files with the standard library, sharing no code with the
// apps, Sequential or the input readers. They produce the expected lines
// of every partition, which the tests compare with Sequential's.

// refLines splits a file into lines: "\n" ends a line, one trailing "\r"
// is dropped, a last line without "\n" counts.
func refLines(data string) []string {
	if data == "" {
		return nil
	}
	lines := strings.Split(data, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// refWords splits text at every rune that is not a letter (an invalid
// UTF-8 byte ranges as utf8.RuneError, not a letter).
func refWords(text string) []string {
	return strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) })
}

// refOutput is the output lines of each partition.
type refOutput map[int][]string

// refBuilder collects output pairs into the hash partitions of their keys;
// done sorts each partition by key (stably: one key's lines keep their
// order), as a run must output them.
type refBuilder struct {
	reduces int
	parts   map[int][][2]string
}

func newRef(reduces int) *refBuilder { return &refBuilder{reduces, map[int][][2]string{}} }

func (b *refBuilder) add(key, value string) {
	p := mapreduce.HashPartition([]byte(key), b.reduces)
	b.parts[p] = append(b.parts[p], [2]string{key, value})
}

func (b *refBuilder) done() refOutput {
	out := refOutput{}
	for p, kvs := range b.parts {
		slices.SortStableFunc(kvs, func(x, y [2]string) int { return strings.Compare(x[0], y[0]) })
		for _, kv := range kvs {
			line := kv[0]
			if kv[1] != "" {
				line += "\t" + kv[1]
			}
			out[p] = append(out[p], line)
		}
	}
	return out
}

func refWordCount(files map[string]string, reduces int) refOutput {
	counts := map[string]int{}
	for _, data := range files {
		for _, w := range refWords(data) {
			counts[w]++
		}
	}
	out := newRef(reduces)
	for w, n := range counts {
		out.add(w, fmt.Sprint(n))
	}
	return out.done()
}

func refGrep(files map[string]string, pattern string, reduces int) refOutput {
	re := regexp.MustCompile(pattern)
	counts := map[string]int{}
	for _, data := range files {
		for _, l := range refLines(data) {
			if re.MatchString(l) {
				counts[l]++
			}
		}
	}
	out := newRef(reduces)
	for l, n := range counts {
		out.add(l, fmt.Sprint(n))
	}
	return out.done()
}

func refIndex(files map[string]string, reduces int) refOutput {
	where := map[string]map[string]bool{}
	for path, data := range files {
		for _, w := range refWords(data) {
			if where[w] == nil {
				where[w] = map[string]bool{}
			}
			where[w][path] = true
		}
	}
	out := newRef(reduces)
	for w, set := range where {
		var paths []string
		for p := range set {
			paths = append(paths, p)
		}
		slices.Sort(paths)
		out.add(w, fmt.Sprintf("%d %s", len(paths), strings.Join(paths, ",")))
	}
	return out.done()
}

func refIdentity(files map[string]string, reduces int) refOutput {
	out := newRef(reduces)
	for _, data := range files {
		for _, l := range refLines(data) {
			out.add(l, "")
		}
	}
	return out.done()
}

// refSorted is every line of every file, sorted: what the sort job's part
// files concatenated must hold.
func refSorted(files map[string]string) []string {
	var all []string
	for _, data := range files {
		all = append(all, refLines(data)...)
	}
	slices.Sort(all)
	return all
}

// runSequential runs app over files with Sequential and returns the output
// lines of each partition.
func runSequential(t testing.TB, app mapreduce.App, conf mapreduce.Config, files map[string]string, reduces int) refOutput {
	t.Helper()
	out, err := trySequential(app, conf, files, reduces)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func trySequential(app mapreduce.App, conf mapreduce.Config, files map[string]string, reduces int) (refOutput, error) {
	job, err := app(conf)
	if err != nil {
		return nil, err
	}
	return sequentialJob(job, conf, files, reduces)
}

func sequentialJob(job *mapreduce.Job, conf mapreduce.Config, files map[string]string, reduces int) (refOutput, error) {
	var inputs []mapreduce.InputFile
	for path, data := range files {
		inputs = append(inputs, mapreduce.InputFile{Path: path, Size: int64(len(data))})
	}
	slices.SortFunc(inputs, func(a, b mapreduce.InputFile) int { return strings.Compare(a.Path, b.Path) })
	read := func(path string) ([]byte, error) {
		data, ok := files[path]
		if !ok {
			return nil, fmt.Errorf("no file %s", path)
		}
		return []byte(data), nil
	}
	got := refOutput{}
	err := Sequential(context.Background(), job, inputs, read, reduces, conf, func(p int, line []byte) error {
		if p < 0 || p >= reduces {
			return fmt.Errorf("partition %d of %d", p, reduces)
		}
		s := string(line)
		if !strings.HasSuffix(s, "\n") {
			return fmt.Errorf("line %q without newline", s)
		}
		got[p] = append(got[p], strings.TrimSuffix(s, "\n"))
		return nil
	})
	return got, err
}

func equalOutput(t testing.TB, got, want refOutput) {
	t.Helper()
	for p := range max(len(got), len(want)) + 64 {
		if !slices.Equal(got[p], want[p]) {
			t.Fatalf("partition %d:\n got %d lines %q\nwant %d lines %q", p, len(got[p]), head(got[p]), len(want[p]), head(want[p]))
		}
	}
}

func head(s []string) []string { return s[:min(len(s), 20)] }

// vocabulary mixes ASCII, non-ASCII letters, case variants and a combining
// mark (not a letter: "e\u0301" is two words' worth of splitting).
var vocabulary = []string{
	"the", "The", "THE", "map", "reduce", "straße", "Ärger", "日本語", "naïve",
	"Ωmega", "café", "cafe\u0301", "ß", "i", "x", "Привет", "مرحبا", "abc123def",
}

// genTextFiles makes n files of random words and separators (spaces,
// punctuation, digits, tabs, "\r\n", invalid UTF-8), some lines repeated.
func genTextFiles(rng *rand.Rand, n int) map[string]string {
	seps := []string{" ", " ", "  ", ", ", ".", "\t", "-", "42", "\xff", "…", "\u00a0"}
	files := map[string]string{}
	for i := range n {
		var b strings.Builder
		var prev string
		for range rng.IntN(200) {
			if prev != "" && rng.IntN(8) == 0 {
				b.WriteString(prev) // a duplicate line
				continue
			}
			var l strings.Builder
			for range rng.IntN(12) {
				l.WriteString(vocabulary[rng.IntN(len(vocabulary))])
				l.WriteString(seps[rng.IntN(len(seps))])
			}
			if rng.IntN(5) == 0 {
				l.WriteString("\r")
			}
			l.WriteString("\n")
			prev = l.String()
			b.WriteString(prev)
		}
		if rng.IntN(3) == 0 {
			b.WriteString("tail without newline")
		}
		files[fmt.Sprintf("in/file-%02d.txt", i)] = b.String()
	}
	return files
}
