package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedianAndSpread(t *testing.T) {
	for _, tc := range []struct {
		in          []float64
		med, spread float64
	}{
		{[]float64{5}, 5, 0},
		{[]float64{3, 1, 2}, 2, 100},
		{[]float64{10, 30, 20, 40}, 25, 120},
		{[]float64{0, 0}, 0, 0},
	} {
		med, spread := median(tc.in)
		if med != tc.med || math.Abs(spread-tc.spread) > 1e-9 {
			t.Errorf("median(%v) = %v, %v%%; want %v, %v%%", tc.in, med, spread, tc.med, tc.spread)
		}
	}
}

func TestAggregateResultsTakesMedians(t *testing.T) {
	runs := []Result{
		{Workload: WorkloadSeqRead, Unit: UnitMiBPerS, MiBPerS: 100, OpsPerS: 100, P50Ms: 3, Bytes: 10, Runs: 1},
		{Workload: WorkloadSeqRead, Unit: UnitMiBPerS, MiBPerS: 300, OpsPerS: 300, P50Ms: 1, Bytes: 30, Runs: 1},
		{Workload: WorkloadSeqRead, Unit: UnitMiBPerS, MiBPerS: 200, OpsPerS: 200, P50Ms: 2, Bytes: 20, Runs: 1, Note: "x"},
	}
	got := aggregateResults(runs)
	if got.MiBPerS != 200 || got.P50Ms != 2 || got.Bytes != 20 || got.Runs != 3 {
		t.Errorf("aggregate = %+v, want medians 200 MiB/s, p50 2, 20 bytes, 3 runs", got)
	}
	if math.Abs(got.SpreadPct-100) > 1e-9 {
		t.Errorf("spread = %v%%, want 100%%", got.SpreadPct)
	}
	if !slices.Equal(got.Values, []float64{100, 300, 200}) {
		t.Errorf("values = %v, want every run's figure in run order", got.Values)
	}
	if got.Note != "x" {
		t.Errorf("note = %q, want the runs' notes", got.Note)
	}
	bs := aggregateBaselines([]Baseline{
		{Name: BaselineServe, Value: 10, Parts: map[string]float64{"a": 1}},
		{Name: BaselineServe, Value: 30, Parts: map[string]float64{"a": 3}},
	})
	if bs.Value != 20 || bs.Parts["a"] != 2 || bs.Runs != 2 || bs.SpreadPct != 100 || !slices.Equal(bs.Values, []float64{10, 30}) {
		t.Errorf("baseline aggregate = %+v", bs)
	}
}

func TestMeasurementResult(t *testing.T) {
	m := &measurement{bytes: 4 << 20, ops: 4, elapsed: 2 * time.Second}
	for _, d := range []time.Duration{1, 2, 3, 4} {
		m.lat.Add(d * time.Millisecond)
	}
	r := m.result(WorkloadSeqWrite, 2, ioBytes, UnitMiBPerS)
	if r.MiBPerS != 2 || r.OpsPerS != 2 || r.Seconds != 2 || r.P50Ms != 2 || r.P99Ms != 4 {
		t.Errorf("result = %+v, want 2 MiB/s, 2 ops/s, 2 s, p50 2 ms, p99 4 ms", r)
	}
}

// sampleReport is a report with one result per workload against measured baselines.
func sampleReport() *Report {
	rep := &Report{
		Machine: DescribeMachine(".."),
		Baselines: []Baseline{
			{Name: BaselineServe, Unit: UnitMiBPerS, Value: 2000, Parts: map[string]float64{"sendfile_mib_per_s": 1800, "readwrite_mib_per_s": 2000}},
			{Name: BaselineODirect, Unit: UnitMiBPerS, Value: 3000},
			{Name: BaselineRelay, Unit: UnitMiBPerS, Value: 500},
			{Name: BaselineRPC, Unit: UnitOpsPerS, Value: 40000, P50Ms: 0.05},
		},
	}
	for i, w := range Workloads {
		unit := UnitMiBPerS
		if w == WorkloadAppend || w == WorkloadStream || w == WorkloadMetadata {
			unit = UnitOpsPerS
		}
		r := Result{Workload: w, Unit: unit, Clients: 4, MiBPerS: float64(100 * (i + 1)), OpsPerS: float64(1000 * (i + 1)), Runs: 1}
		attachBaseline(&r, rep.Baselines)
		rep.Results = append(rep.Results, r)
	}
	return rep
}

func TestReportJSONShape(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, buf.String())
	}
	machine, ok := doc["machine"].(map[string]any)
	if !ok {
		t.Fatalf("no machine object: %s", buf.String())
	}
	for _, k := range []string{"cores", "memory_bytes", "kernel", "disk", "go_version", "load_avg"} {
		if _, ok := machine[k]; !ok {
			t.Errorf("machine lacks %q", k)
		}
	}
	results, ok := doc["results"].([]any)
	if !ok || len(results) != len(Workloads) {
		t.Fatalf("results = %v, want %d entries", doc["results"], len(Workloads))
	}
	keys := []string{"workload", "clients", "record_bytes", "bytes", "ops", "seconds", "mib_per_s",
		"ops_per_s", "p50_ms", "p99_ms", "baseline", "baseline_value", "ratio"}
	for _, x := range results {
		r := x.(map[string]any)
		for _, k := range keys {
			if _, ok := r[k]; !ok {
				t.Errorf("result %v lacks %q", r["workload"], k)
			}
		}
		if r["baseline"] == "" || r["baseline_value"].(float64) <= 0 {
			t.Errorf("result %v has no baseline: %v", r["workload"], r)
		}
		value := r["mib_per_s"].(float64)
		if r["unit"] == UnitOpsPerS {
			value = r["ops_per_s"].(float64)
		}
		if want := value / r["baseline_value"].(float64); math.Abs(r["ratio"].(float64)-want) > 1e-12 {
			t.Errorf("result %v: ratio %v, want %v / %v = %v", r["workload"], r["ratio"], value, r["baseline_value"], want)
		}
	}
	// Spot-check the pairing the documentation promises.
	want := map[string]string{"seqwrite": "relay", "seqread": "serve", "randread": "serve", "append": "rpc", "appendstream": "rpc", "metadata": "rpc"}
	for _, x := range results {
		r := x.(map[string]any)
		if r["baseline"] != want[r["workload"].(string)] {
			t.Errorf("%v compared with %v, want %v", r["workload"], r["baseline"], want[r["workload"].(string)])
		}
	}
}

func TestMissingBaselineIsSaid(t *testing.T) {
	r := Result{Workload: WorkloadSeqWrite, Unit: UnitMiBPerS, MiBPerS: 5}
	attachBaseline(&r, nil)
	if r.Baseline != BaselineRelay || r.Ratio != 0 || !strings.Contains(r.Note, "not measured") {
		t.Errorf("result without baseline = %+v, want baseline named, ratio 0, a note", r)
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range append([]string{"machine:", "baseline", "ratio", "sendfile_mib_per_s=1800"}, Workloads...) {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}
