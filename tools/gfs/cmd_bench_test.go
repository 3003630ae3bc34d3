package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/bench"
)

func benchIO(out, errOut *bytes.Buffer) IO {
	return IO{Stdin: strings.NewReader(""), Stdout: out, Stderr: errOut, Getenv: func(string) string { return "" }}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-workload", "seqwrite,nope"}, "unknown workload"},
		{[]string{"-workload", ","}, "no workload"},
		{[]string{"-workloads", "wordcount,nope"}, "unknown workload"},
		{[]string{"-workloads", "sort", "-mr-input-bytes", "1KiB"}, "MapReduce input"},
		{[]string{"-record-bytes", "8"}, "record size"},
		{[]string{"-size", "1KiB"}, "size"},
		{[]string{"-runs", "-1"}, "runs"},
		{[]string{"-dir", "/nonexistent/bench"}, "not a directory"},
	} {
		var out, errOut bytes.Buffer
		err := cmdBench(context.Background(), tc.args, benchIO(&out, &errOut))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gfs bench %q = %v, want an error about %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("gfs bench %q printed %q", tc.args, out.String())
		}
	}
	var out, errOut bytes.Buffer
	var exit *ExitError
	if err := cmdBench(context.Background(), []string{"-size", "lots"}, benchIO(&out, &errOut)); !errors.As(err, &exit) || exit.Code != 2 {
		t.Errorf("unparsable size: %v, want exit status 2", err)
	}
	if err := cmdBench(context.Background(), []string{"extra"}, benchIO(&out, &errOut)); !errors.As(err, &exit) || exit.Code != 2 {
		t.Errorf("positional argument: %v, want exit status 2", err)
	}
	if err := cmdBench(context.Background(), []string{"-record-bytes", "8"}, benchIO(&out, &errOut)); !errors.Is(err, bench.ErrBadOptions) {
		t.Errorf("bad record size: %v, want bench.ErrBadOptions", err)
	}
}

func TestBenchRelayNodeNeedsDir(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := cmdBenchRelayNode(context.Background(), []string{"-next", "127.0.0.1:1"}, benchIO(&out, &errOut)); err == nil {
		t.Error("relay node without -dir ran")
	}
}

// TestBenchRelayNodeServesUntilStdinCloses runs the hidden child command in
// process: it prints its address and returns when its stdin ends.
func TestBenchRelayNodeServesUntilStdinCloses(t *testing.T) {
	var out, errOut bytes.Buffer
	stdio := benchIO(&out, &errOut)
	stdio.Stdin = strings.NewReader("") // EOF at once: serve, then stop
	if err := cmdBenchRelayNode(context.Background(), []string{"-dir", t.TempDir()}, stdio); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "ready 127.0.0.1:") {
		t.Errorf("stdout %q, want a ready line", out.String())
	}
}

// TestE2EBenchJSON runs a tiny suite through the built binary: an embedded
// cluster, every baseline (relay hops are the binary re-executed as
// bench-relay-node) and every workload; the JSON parses and every result
// carries a baseline and a ratio.
func TestE2EBenchJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	out := gfs(t, bin, nil, 0, "bench", "-json", "-runs", "1", "-clients", "2", "-size", "2MiB", "-chunk-size", "1MiB",
		"-record-bytes", "1000", "-duration", "300ms", "-baseline-duration", "200ms", "-lease", "2s", "-dir", dir)
	var doc struct {
		Machine   map[string]any   `json:"machine"`
		Baselines []map[string]any `json:"baselines"`
		Results   []map[string]any `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, out)
	}
	if doc.Machine["cores"] == nil || len(doc.Baselines) != 4 || len(doc.Results) != len(bench.Workloads) {
		t.Fatalf("machine %v, %d baselines, %d results; want 4 and %d", doc.Machine, len(doc.Baselines), len(doc.Results), len(bench.Workloads))
	}
	for _, r := range doc.Results {
		if b, _ := r["baseline"].(string); b == "" {
			t.Errorf("%v: no baseline", r["workload"])
		}
		if ratio, _ := r["ratio"].(float64); ratio <= 0 {
			t.Errorf("%v: ratio %v", r["workload"], r["ratio"])
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind in %s: %v", dir, left)
	}
}
