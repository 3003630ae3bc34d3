package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
)

// TestMapReduceWorkloads runs wordcount and sort over 4 MiB inputs on the
// embedded cluster with its in-process MapReduce, and checks that every
// figure is set, that the outputs were verified, and that both outputs show them.
func TestMapReduceWorkloads(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{
		Workloads:      MRWorkloads,
		Runs:           1,
		MRInputBytes:   4 << 20,
		ChunkSizeBytes: 1 << 20, // input files of several chunks
		NoBaselines:    true,
		LeaseTTL:       5 * time.Second,
		Dir:            dir,
		Connect:        ConnectClient(client.Options{}, 3),
		StartCluster:   StartEmbeddedCluster,
		Progress:       &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(rep.Results), rep.Results)
	}
	for _, r := range rep.Results {
		m := r.MR
		if m == nil {
			t.Fatalf("%s: no MapReduce figures: %+v", r.Workload, r)
		}
		if r.Bytes < 4<<20-4<<10 || r.MiBPerS <= 0 || r.Baseline != BaselineSequential || r.BaselineValue <= 0 || r.Ratio <= 0 || r.VerifiedBytes != r.Bytes {
			t.Errorf("%s: %+v, want input bytes, MiB/s, the sequential baseline and a ratio", r.Workload, r)
		}
		if m.Maps < 1 || m.Reduces < 1 || m.VerifiedRecords < 1 || m.DataLocalFraction < 0 || m.DataLocalFraction > 1 || m.MapSeconds <= 0 {
			t.Errorf("%s: %+v", r.Workload, *m)
		}
		if r.Workload == WorkloadSort {
			if m.VerifiedRecords != r.Bytes/sortRecordBytes || m.IOFloorMiBPerS <= 0 || m.IOFloorRatio <= 0 {
				t.Errorf("sort: %+v, want every record verified and an I/O floor", *m)
			}
		} else if m.IOFloorMiBPerS != 0 {
			t.Errorf("wordcount has an I/O floor: %+v", *m)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []struct {
			MR map[string]any `json:"mapreduce"`
		} `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.Results) != 2 || doc.Results[1].MR["io_floor_mib_per_s"] == nil {
		t.Fatalf("JSON (%v): %s", err, buf.String())
	}
	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "mapreduce: sort:") || !strings.Contains(buf.String(), "I/O floor") {
		t.Errorf("table lacks the MapReduce figures:\n%s", buf.String())
	}
	t.Logf("\n%s", buf.String())
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind in %s: %v", dir, left)
	}
}

// TestMapReduceWorkloadsSkippedWithoutMR: a target without StartMR (an
// existing cluster) reports the MapReduce workloads as skipped.
func TestMapReduceWorkloadsSkippedWithoutMR(t *testing.T) {
	env := &workloadEnv{}
	r, err := env.mrWorkload(context.Background(), WorkloadSort)
	if err != nil || r.MR != nil || !strings.Contains(r.Note, "skipped") {
		t.Fatalf("%+v, %v: want a skipped result", r, err)
	}
}

// TestReferencesAgree checks the sequential references against small
// hand-made inputs.
func TestReferencesAgree(t *testing.T) {
	dir := t.TempDir()
	in, out := dir+"/in", dir+"/out"
	os.WriteFile(in, []byte("b a, b\nc b\n"), 0o644)
	ref, err := referenceWordCount(in, out)
	if err != nil || ref.words != 5 || ref.distinct != 3 {
		t.Fatalf("%+v, %v", ref, err)
	}
	if got, _ := os.ReadFile(out); string(got) != "a\t1\nb\t3\nc\t1\n" {
		t.Errorf("wordcount output %q", got)
	}
	recs := strings.Repeat("z", 99) + "\n" + strings.Repeat("a", 99) + "\n"
	os.WriteFile(in, []byte(recs), 0o644)
	ref, err = referenceSort(in, out)
	if err != nil || ref.records != 2 {
		t.Fatalf("%+v, %v", ref, err)
	}
	if got, _ := os.ReadFile(out); string(got) != strings.Repeat("a", 99)+"\n"+strings.Repeat("z", 99)+"\n" {
		t.Errorf("sort output %q", got)
	}
}
