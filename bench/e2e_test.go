package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/client"
)

// TestSuiteAgainstEmbeddedCluster runs a tiny version of the whole suite, with
// every baseline (relay hops as re-executed test binaries), against a real
// in-process cluster through the real client, and checks the report.
func TestSuiteAgainstEmbeddedCluster(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{
		Clients:          2,
		Runs:             1,
		SizeBytes:        3 << 20,
		ChunkSizeBytes:   1 << 20, // several chunks per file, appends that cross chunks
		RecordBytes:      1000,
		Duration:         300 * time.Millisecond,
		BaselineDuration: 200 * time.Millisecond,
		LeaseTTL:         5 * time.Second, // the fresh master's lease grace
		Dir:              dir,
		RelayCommand:     testRelayCommand,
		Connect:          ConnectClient(client.Options{}, 3),
		StartCluster:     StartEmbeddedCluster,
		Progress:         &progress,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	if len(rep.Baselines) != 4 || len(rep.Results) != len(Workloads) {
		t.Fatalf("%d baselines and %d results, want 4 and %d", len(rep.Baselines), len(rep.Results), len(Workloads))
	}
	for _, r := range rep.Results {
		if r.Ops == 0 || r.Baseline == "" || r.BaselineValue <= 0 || r.Ratio <= 0 {
			t.Errorf("%s: %+v, want ops, a baseline and a ratio", r.Workload, r)
		}
		if r.Workload != WorkloadMetadata && r.Workload != WorkloadSeqWrite && r.VerifiedBytes == 0 {
			t.Errorf("%s verified nothing", r.Workload)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.Results) != len(Workloads) {
		t.Fatalf("JSON does not parse back (%v): %s", err, buf.String())
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind in %s: %v", dir, left)
	}
}
