package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Units of a result's headline figure, baseline_value and ratio.
const (
	UnitMiBPerS = "MiB/s"
	UnitOpsPerS = "ops/s"
)

// Baseline names.
const (
	BaselineServe   = "serve"
	BaselineODirect = "odirect"
	BaselineRelay   = "relay"
	BaselineRPC     = "rpc"
)

// Result is one workload's measurement (the median of its runs).
type Result struct {
	Workload    string  `json:"workload"`
	Clients     int     `json:"clients"`
	RecordBytes int64   `json:"record_bytes"` // bytes per operation (0 for metadata)
	Bytes       int64   `json:"bytes"`        // payload bytes moved in the measured phase
	Ops         int64   `json:"ops"`
	Seconds     float64 `json:"seconds"`
	MiBPerS     float64 `json:"mib_per_s"`
	OpsPerS     float64 `json:"ops_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	P999Ms      float64 `json:"p999_ms"`
	// Baseline names the baseline this result is compared with, BaselineValue
	// is that baseline's figure in Unit and Ratio = headline / BaselineValue.
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	Ratio         float64 `json:"ratio"`
	Unit          string  `json:"unit"`
	Runs          int     `json:"runs"`
	// SpreadPct is (max-min)/median of the headline figure over the runs, in percent.
	SpreadPct float64 `json:"spread_pct"`
	// Values are the headline figure of every run, in run order.
	Values []float64 `json:"values"`
	// VerifiedBytes counts bytes compared with what was written (reads), or the
	// bytes of acknowledged records found again (append).
	VerifiedBytes int64 `json:"verified_bytes"`
	// Note says anything a reader of the figure must know (duplicates found, ...).
	Note string `json:"note,omitempty"`
	// MR holds a MapReduce workload's further figures (nil for the others).
	// Its headline is the job's input MiB/s, its baseline the sequential
	// reference (Ratio > 1: the job is faster).
	MR *MRFigures `json:"mapreduce,omitempty"`
}

// Headline is the result's figure in its Unit.
func (r Result) Headline() float64 {
	if r.Unit == UnitOpsPerS {
		return r.OpsPerS
	}
	return r.MiBPerS
}

// Baseline is one machine-limit measurement (the median of its runs).
type Baseline struct {
	Name    string  `json:"name"`
	Unit    string  `json:"unit"`
	Value   float64 `json:"value"` // the ceiling the ratios use
	Clients int     `json:"clients"`
	Seconds float64 `json:"seconds"`
	// Parts are the component figures (for serve: sendfile_mib_per_s and
	// readwrite_mib_per_s; Value is the faster one).
	Parts     map[string]float64 `json:"parts,omitempty"`
	P50Ms     float64            `json:"p50_ms,omitempty"`
	P99Ms     float64            `json:"p99_ms,omitempty"`
	P999Ms    float64            `json:"p999_ms,omitempty"`
	Runs      int                `json:"runs"`
	SpreadPct float64            `json:"spread_pct"`
	Values    []float64          `json:"values"` // Value of every run, in run order
	Note      string             `json:"note,omitempty"`
}

// Report is the document `gfs bench -json` prints.
type Report struct {
	Machine   Machine    `json:"machine"`
	Config    Config     `json:"config"`
	Baselines []Baseline `json:"baselines"`
	Results   []Result   `json:"results"`
}

// Config records what was run, so that a figure can be reproduced.
type Config struct {
	// Command is the command line that produced the report (set by the caller).
	Command string `json:"command,omitempty"`
	// Revision is the VCS revision the binary was built from ("+dirty" when
	// the tree had changes), "" when unknown.
	Revision       string  `json:"revision,omitempty"`
	Target         string  `json:"target"` // "embedded" or the master address
	Clients        int     `json:"clients"`
	SizeBytes      int64   `json:"size_bytes"`
	RecordBytes    int     `json:"record_bytes"`
	DurationS      float64 `json:"duration_s"`
	BaselineS      float64 `json:"baseline_duration_s"`
	Runs           int     `json:"runs"`
	ChunkSizeBytes int64   `json:"chunk_size_bytes"`
	Chunkservers   int     `json:"chunkservers"`
	Replication    int     `json:"replication"`
	Dir            string  `json:"dir"`
}

// WriteJSON writes r as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r for people: machine, baselines, then results with ratios.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores (%s), %s memory, kernel %s, %s, data dir %s on %s, load average %s at start\n",
		m.Cores, m.CPUModel, formatBytes(m.MemoryBytes), m.Kernel, m.GoVersion, m.DataDir, m.Disk, m.LoadAvg)
	fmt.Fprintf(w, "target: %s, %d clients, runs %d (median; spread = (max-min)/median)\n",
		r.Config.Target, r.Config.Clients, r.Config.Runs)
	if r.Config.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Config.Command)
	}
	if r.Config.Revision != "" {
		fmt.Fprintf(w, "revision: %s\n", r.Config.Revision)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "baseline\tvalue\tunit\tclients\tp50 ms\tp99 ms\tspread\tparts\t")
	for _, b := range r.Baselines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.1f%%\t%s\t\n", b.Name, formatValue(b.Value), b.Unit, b.Clients,
			optMs(b.P50Ms), optMs(b.P99Ms), b.SpreadPct, formatParts(b.Parts, b.Note))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tclients\tMiB/s\tops/s\tp50 ms\tp99 ms\tp999 ms\tvs baseline\tratio\tspread\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.3f\t%.3f\t%.3f\t%s %s %s\t%.3f\t%.1f%%\t\n",
			res.Workload, res.Clients, optValue(res.MiBPerS, res.Bytes), formatValue(res.OpsPerS),
			res.P50Ms, res.P99Ms, res.P999Ms, res.Baseline, formatValue(res.BaselineValue), res.Unit,
			res.Ratio, res.SpreadPct)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		if res.Note != "" {
			fmt.Fprintf(w, "note: %s: %s\n", res.Workload, res.Note)
		}
	}
	for _, res := range r.Results {
		if m := res.MR; m != nil {
			fmt.Fprintf(w, "mapreduce: %s: %s input in %.2fs with %d workers; sequential reference %s MiB/s (%.2fs)",
				res.Workload, formatBytes(res.Bytes), res.Seconds, res.Clients, formatValue(m.ReferenceMiBPerS), m.ReferenceSeconds)
			if m.IOFloorMiBPerS > 0 {
				fmt.Fprintf(w, "; I/O floor %s MiB/s (%.2fs), ratio %.3f", formatValue(m.IOFloorMiBPerS), m.IOFloorSeconds, m.IOFloorRatio)
			}
			fmt.Fprintf(w, "; %d maps %.0f%% data-local, %d reduces; phases map %.2fs reduce %.2fs commit %.2fs; %d output records verified\n",
				m.Maps, m.DataLocalFraction*100, m.Reduces, m.MapSeconds, m.ReduceSeconds, m.CommitSeconds, m.VerifiedRecords)
		}
	}
	return nil
}

// optValue formats a throughput, or "-" when no bytes moved (metadata).
func optValue(v float64, bytes int64) string {
	if bytes == 0 {
		return "-"
	}
	return formatValue(v)
}

func optMs(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func formatParts(parts map[string]float64, note string) string {
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		if v := parts[k]; v == float64(int64(v)) {
			fmt.Fprintf(&b, "%s=%d", k, int64(v))
		} else {
			fmt.Fprintf(&b, "%s=%s", k, formatValue(v))
		}
	}
	if note != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("(" + note + ")")
	}
	return b.String()
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// measurement is one run of one workload, before aggregation.
type measurement struct {
	bytes, ops, verified int64
	elapsed              time.Duration
	lat                  Latencies
	note                 string
}

// result turns one measurement into a Result (ratios are filled in later).
func (m *measurement) result(workload string, clients int, recordBytes int64, unit string) Result {
	secs := m.elapsed.Seconds()
	r := Result{
		Workload: workload, Clients: clients, RecordBytes: recordBytes,
		Bytes: m.bytes, Ops: m.ops, Seconds: secs, Unit: unit, Runs: 1,
		P50Ms: ms(m.lat.Percentile(50)), P99Ms: ms(m.lat.Percentile(99)), P999Ms: ms(m.lat.Percentile(99.9)),
		VerifiedBytes: m.verified, Note: m.note,
	}
	if secs > 0 {
		r.MiBPerS = float64(m.bytes) / (1 << 20) / secs
		r.OpsPerS = float64(m.ops) / secs
	}
	r.Values = []float64{r.Headline()}
	return r
}

// median returns the median of vs (the mean of the middle two for an even
// count) and the spread (max-min)/median in percent. vs must not be empty.
func median(vs []float64) (med, spreadPct float64) {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		med = s[n/2]
	} else {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	if med != 0 {
		spreadPct = (s[n-1] - s[0]) / med * 100
	}
	return med, spreadPct
}

// aggregateResults folds the runs of one workload into their median: every
// numeric field is the median of its values, Runs the count, SpreadPct the
// spread of the headline figure.
func aggregateResults(runs []Result) Result {
	out := runs[0]
	out.Values = make([]float64, len(runs))
	for i, r := range runs {
		out.Values[i] = r.Headline()
	}
	if len(runs) == 1 {
		return out
	}
	pick := func(f func(Result) float64) float64 {
		vs := make([]float64, len(runs))
		for i, r := range runs {
			vs[i] = f(r)
		}
		m, _ := median(vs)
		return m
	}
	out.Bytes = int64(pick(func(r Result) float64 { return float64(r.Bytes) }))
	out.Ops = int64(pick(func(r Result) float64 { return float64(r.Ops) }))
	out.VerifiedBytes = int64(pick(func(r Result) float64 { return float64(r.VerifiedBytes) }))
	out.Seconds = pick(func(r Result) float64 { return r.Seconds })
	out.MiBPerS = pick(func(r Result) float64 { return r.MiBPerS })
	out.OpsPerS = pick(func(r Result) float64 { return r.OpsPerS })
	out.P50Ms = pick(func(r Result) float64 { return r.P50Ms })
	out.P99Ms = pick(func(r Result) float64 { return r.P99Ms })
	out.P999Ms = pick(func(r Result) float64 { return r.P999Ms })
	vs := make([]float64, len(runs))
	notes := []string{}
	for i, r := range runs {
		vs[i] = r.Headline()
		if r.Note != "" && !slices.Contains(notes, r.Note) {
			notes = append(notes, r.Note)
		}
	}
	_, out.SpreadPct = median(vs)
	out.Runs = len(runs)
	out.Note = strings.Join(notes, "; ")
	if out.MR != nil {
		// The ratios are the medians of each run's own ratio: each run has
		// its own reference, measured beside it.
		out.BaselineValue = pick(func(r Result) float64 { return r.BaselineValue })
		out.Ratio = pick(func(r Result) float64 { return r.Ratio })
		mr := func(f func(*MRFigures) float64) float64 {
			return pick(func(r Result) float64 {
				if r.MR == nil {
					return 0
				}
				return f(r.MR)
			})
		}
		m := *out.MR
		m.Maps = int64(mr(func(m *MRFigures) float64 { return float64(m.Maps) }))
		m.Reduces = int64(mr(func(m *MRFigures) float64 { return float64(m.Reduces) }))
		m.ReferenceMiBPerS = mr(func(m *MRFigures) float64 { return m.ReferenceMiBPerS })
		m.ReferenceSeconds = mr(func(m *MRFigures) float64 { return m.ReferenceSeconds })
		m.IOFloorMiBPerS = mr(func(m *MRFigures) float64 { return m.IOFloorMiBPerS })
		m.IOFloorSeconds = mr(func(m *MRFigures) float64 { return m.IOFloorSeconds })
		m.IOFloorRatio = mr(func(m *MRFigures) float64 { return m.IOFloorRatio })
		m.DataLocalFraction = mr(func(m *MRFigures) float64 { return m.DataLocalFraction })
		m.MapSeconds = mr(func(m *MRFigures) float64 { return m.MapSeconds })
		m.ReduceSeconds = mr(func(m *MRFigures) float64 { return m.ReduceSeconds })
		m.CommitSeconds = mr(func(m *MRFigures) float64 { return m.CommitSeconds })
		m.VerifiedRecords = int64(mr(func(m *MRFigures) float64 { return float64(m.VerifiedRecords) }))
		out.MR = &m
	}
	return out
}

// aggregateBaselines folds the runs of one baseline into their median.
func aggregateBaselines(runs []Baseline) Baseline {
	out := runs[0]
	out.Values = make([]float64, len(runs))
	for i, b := range runs {
		out.Values[i] = b.Value
	}
	if len(runs) == 1 {
		return out
	}
	pick := func(f func(Baseline) float64) float64 {
		vs := make([]float64, len(runs))
		for i, r := range runs {
			vs[i] = f(r)
		}
		m, _ := median(vs)
		return m
	}
	out.Seconds = pick(func(b Baseline) float64 { return b.Seconds })
	out.P50Ms = pick(func(b Baseline) float64 { return b.P50Ms })
	out.P99Ms = pick(func(b Baseline) float64 { return b.P99Ms })
	out.P999Ms = pick(func(b Baseline) float64 { return b.P999Ms })
	out.Parts = map[string]float64{}
	for k := range runs[0].Parts {
		out.Parts[k] = pick(func(b Baseline) float64 { return b.Parts[k] })
	}
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = r.Value
	}
	out.Value, out.SpreadPct = median(vs)
	out.Runs = len(runs)
	return out
}

// workloadBaseline says which baseline each workload is compared with.
var workloadBaseline = map[string]string{
	WorkloadSeqWrite: BaselineRelay,
	WorkloadSeqRead:  BaselineServe,
	WorkloadRandRead: BaselineServe,
	WorkloadAppend:   BaselineRPC,
	WorkloadStream:   BaselineRPC,
	WorkloadMetadata: BaselineRPC,
}

// attachBaseline fills r's Baseline, BaselineValue and Ratio from bs. A
// result whose baseline is missing (not measured) keeps the name with value 0
// and ratio 0 and says so in its Note.
func attachBaseline(r *Result, bs []Baseline) {
	if slices.Contains(MRWorkloads, r.Workload) {
		return // compared with the sequential reference of its own run
	}
	r.Baseline = workloadBaseline[r.Workload]
	for _, b := range bs {
		if b.Name != r.Baseline {
			continue
		}
		if b.Unit != r.Unit {
			// Cannot happen with the table above; guard against a wrong edit.
			panic(fmt.Sprintf("bench: workload %s in %s compared with baseline %s in %s", r.Workload, r.Unit, b.Name, b.Unit))
		}
		r.BaselineValue = b.Value
		if b.Value > 0 {
			r.Ratio = r.Headline() / b.Value
		}
		return
	}
	r.Note = strings.TrimPrefix(r.Note+"; baseline "+r.Baseline+" not measured", "; ")
}
