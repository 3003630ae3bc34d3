package apps

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/mapreduce"
)

func TestAllBuilds(t *testing.T) {
	apps := All()
	if got, want := apps.Names(), []string{"grep", "identity", "index", "sort", "streaming", "wordcount"}; !slices.Equal(got, want) {
		t.Fatalf("names %v, want %v", got, want)
	}
	confs := map[string]mapreduce.Config{
		"grep":      {ConfPattern: "a+"},
		"streaming": {ConfMapper: "cat", ConfReducer: "cat"},
	}
	for _, name := range apps.Names() {
		for _, format := range []string{"", "text", "records"} {
			conf := mapreduce.Config{ConfInput: format}
			for k, v := range confs[name] {
				conf[k] = v
			}
			j, err := apps.Build(name, conf)
			if err != nil {
				t.Fatalf("%s %q: %v", name, format, err)
			}
			if want := mapreduce.TextInput; format == "records" {
				want = mapreduce.RecordInput
				if j.Input != want {
					t.Fatalf("%s: input %v, want %v", name, j.Input, want)
				}
			} else if j.Input != want {
				t.Fatalf("%s: input %v, want %v", name, j.Input, want)
			}
		}
		if _, err := apps.Build(name, mapreduce.Config{ConfInput: "parquet", ConfPattern: "x", ConfMapper: "cat"}); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("%s with a bad input format: %v", name, err)
		}
	}
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		app  mapreduce.App
		conf mapreduce.Config
		want string
	}{
		{Grep, nil, "pattern"},
		{Grep, mapreduce.Config{ConfPattern: ""}, "pattern"},
		{Grep, mapreduce.Config{ConfPattern: "a("}, "missing closing )"},
		{Streaming, nil, "mapper"},
		{Streaming, mapreduce.Config{ConfMapper: "  ", ConfReducer: "cat"}, "mapper"},
		{Sort, mapreduce.Config{ConfSortBoundaries: "zz"}, "entry 0"},
		{Sort, mapreduce.Config{ConfSortBoundaries: "02,01"}, "below the one before"},
		{Sort, mapreduce.Config{ConfSortBoundaries: "01,,02"}, "below the one before"},
		{Sort, mapreduce.Config{ConfSortBoundaries: "0"}, "entry 0"},
	} {
		_, err := tc.app(tc.conf)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("conf %v: err %v, want ErrBadConfig mentioning %q", tc.conf, err, tc.want)
		}
	}
}

func TestWordCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for iter := range 20 {
		files := genTextFiles(rng, 1+rng.IntN(5))
		reduces := 1 + rng.IntN(5)
		want := refWordCount(files, reduces)
		got := runSequential(t, WordCount, nil, files, reduces)
		equalOutput(t, got, want)
		if iter == 0 && len(want) == 0 {
			t.Fatal("no words generated")
		}
	}
}

// TestWordCountUnicode pins a few words down by hand.
func TestWordCountUnicode(t *testing.T) {
	files := map[string]string{"a": "Straße straße STRASSE\nnaïve—naïve 日本語,日本語 abc123def e\u0301\xffé\n"}
	got := runSequential(t, WordCount, nil, files, 1)
	want := []string{"STRASSE\t1", "Straße\t1", "abc\t1", "def\t1", "e\t1", "naïve\t2", "straße\t1", "é\t1", "日本語\t2"}
	if !slices.Equal(got[0], want) {
		t.Fatalf("got %q, want %q", got[0], want)
	}
}

// TestCombinerEquivalence: dropping the combiner changes nothing (the
// combiner is an optimization, paper section 4.3).
func TestCombinerEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	files := genTextFiles(rng, 4)
	for _, tc := range []struct {
		app  mapreduce.App
		conf mapreduce.Config
	}{{WordCount, nil}, {Index, nil}, {Grep, mapreduce.Config{ConfPattern: "map|Ω"}}} {
		j, err := tc.app(tc.conf)
		if err != nil {
			t.Fatal(err)
		}
		with, err := sequentialJob(j, tc.conf, files, 3)
		if err != nil {
			t.Fatal(err)
		}
		j.Combine = nil
		without, err := sequentialJob(j, tc.conf, files, 3)
		if err != nil {
			t.Fatal(err)
		}
		equalOutput(t, with, without)
	}
}

func TestGrep(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, pattern := range []string{"map", "^The", "(?i)straße\\s", "日本語.*x$", "[0-9]{2}", "\\t"} {
		files := genTextFiles(rng, 3)
		reduces := 1 + rng.IntN(4)
		conf := mapreduce.Config{ConfPattern: pattern}
		want := refGrep(files, pattern, reduces)
		got := runSequential(t, Grep, conf, files, reduces)
		equalOutput(t, got, want)
	}
}

func TestIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for range 10 {
		files := genTextFiles(rng, 1+rng.IntN(6))
		reduces := 1 + rng.IntN(4)
		equalOutput(t, runSequential(t, Index, nil, files, reduces), refIndex(files, reduces))
	}
	got := runSequential(t, Index, nil, map[string]string{"b": "x y", "a": "y\ny", "c": ""}, 1)
	if want := []string{"x\t1 b", "y\t2 a,b"}; !slices.Equal(got[0], want) {
		t.Fatalf("got %q, want %q", got[0], want)
	}
}

func TestIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 10 {
		files := genTextFiles(rng, 1+rng.IntN(4))
		reduces := 1 + rng.IntN(4)
		equalOutput(t, runSequential(t, Identity, nil, files, reduces), refIdentity(files, reduces))
	}
}

// TestRecordInput: any app reads record-append files with the input
// key, duplicates and padding dropped.
func TestRecordInput(t *testing.T) {
	var file []byte
	enc := func(seq uint64, p string) {
		var err error
		if file, err = client.EncodeRecord(file, client.RecordID{Writer: 7, Sequence: seq}, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	enc(1, "b")
	enc(2, "a")
	file = append(file, make([]byte, 100)...)
	enc(1, "b") // a retried append
	enc(3, "b")
	got := runSequential(t, Identity, mapreduce.Config{ConfInput: "records"}, map[string]string{"r": string(file)}, 1)
	if want := []string{"a", "b", "b"}; !slices.Equal(got[0], want) {
		t.Fatalf("got %q, want %q", got[0], want)
	}
}

// TestSequentialErrors: errors of the user's functions, the reader and
// the partitioner stop the run and say where.
func TestSequentialErrors(t *testing.T) {
	files := map[string]string{"f": "a b\nc\n"}
	boom := errors.New("boom")
	mapFails := &mapreduce.Job{
		Map:    func(context.Context, mapreduce.Record, mapreduce.Emit) error { return boom },
		Reduce: reduceKeyPerValue,
	}
	if _, err := sequentialJob(mapFails, nil, files, 1); !errors.Is(err, boom) || !strings.Contains(err.Error(), "map f") {
		t.Errorf("map error: %v", err)
	}
	badPartition := &mapreduce.Job{Map: mapLineAsKey, Reduce: reduceKeyPerValue, Partition: func([]byte, int) int { return 5 }}
	if _, err := sequentialJob(badPartition, nil, files, 2); err == nil || !strings.Contains(err.Error(), "partitioner returned 5") {
		t.Errorf("partition out of range: %v", err)
	}
	reduceFails := &mapreduce.Job{Map: mapLineAsKey, Reduce: func(context.Context, []byte, mapreduce.Values, mapreduce.Emit) error { return boom }}
	if _, err := sequentialJob(reduceFails, nil, files, 1); !errors.Is(err, boom) || !strings.Contains(err.Error(), "partition 0") {
		t.Errorf("reduce error: %v", err)
	}
	if _, err := sequentialJob(&mapreduce.Job{Map: mapLineAsKey}, nil, files, 1); err == nil {
		t.Error("a job without Reduce ran")
	}
	j, _ := Identity(nil)
	if _, err := sequentialJob(j, nil, files, 0); err == nil {
		t.Error("0 reduces ran")
	}
	// A count that is not a number (a user combining wordcount with
	// something else) is an error naming the key, not a silent zero.
	wc, _ := WordCount(nil)
	err := wc.Reduce(context.Background(), []byte("k"), &sliceValues{kvs: []pair{{value: []byte("1")}, {value: []byte("x")}}}, func(k, v []byte) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"x" is not a count`) {
		t.Errorf("bad count: %v", err)
	}
	var input []mapreduce.InputFile
	input = append(input, mapreduce.InputFile{Path: "missing"})
	err = Sequential(context.Background(), j, input, func(string) ([]byte, error) { return nil, boom }, 1, nil, func(int, []byte) error { return nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("read error: %v", err)
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  uint64
		ok bool
	}{{"0", 0, true}, {"42", 42, true}, {"18446744073709551615", 1<<64 - 1, true}, {"18446744073709551616", 0, false}, {"", 0, false}, {"-1", 0, false}, {"1 ", 0, false}, {"99999999999999999999", 0, false}} {
		n, ok := parseCount([]byte(tc.in))
		if n != tc.n || ok != tc.ok {
			t.Errorf("parseCount(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.ok)
		}
	}
}

// ExampleSequential runs wordcount over two small files.
func ExampleSequential() {
	files := map[string]string{"a.txt": "the quick fox\n", "b.txt": "the lazy dog\nthe end"}
	job, _ := WordCount(nil)
	inputs := []mapreduce.InputFile{{Path: "a.txt", Size: 14}, {Path: "b.txt", Size: 20}}
	read := func(p string) ([]byte, error) { return []byte(files[p]), nil }
	Sequential(context.Background(), job, inputs, read, 1, nil, func(_ int, line []byte) error {
		fmt.Print(string(line))
		return nil
	})
	// Output:
	// dog	1
	// end	1
	// fox	1
	// lazy	1
	// quick	1
	// the	3
}
