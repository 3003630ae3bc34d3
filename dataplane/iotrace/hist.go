package iotrace

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors of Open.
var (
	// ErrPermission: the caller may not load BPF programs or open
	// tracepoints (needs root, or CAP_BPF with CAP_PERFMON).
	ErrPermission = errors.New("needs root or CAP_BPF+CAP_PERFMON")
	// ErrUnsupported: this build has no BPF object for the platform.
	ErrUnsupported = errors.New("I/O tracing is supported on linux/amd64 only")
	// ErrNoProcess: the target process does not exist.
	ErrNoProcess = errors.New("no such process")
)

// Slots is the number of log2 latency buckets: bucket 0 holds 0-1 us,
// bucket k holds [2^k, 2^(k+1)) us; the last also holds everything longer.
const Slots = 32

// Kind names one histogram, in the kernel's order (enum kind in
// bpf/iotrace.c).
var kindNames = [numKinds]string{
	"pread64", "pwrite64", "fdatasync", "fsync", "sendfile64", "splice",
	"block_read", "block_write", "block_other",
}

// numKinds is the number of histograms (NKINDS in bpf/iotrace.c).
const numKinds = 9

// Kinds returns the histogram names in report order.
func Kinds() []string { return append([]string(nil), kindNames[:]...) }

// Hist is one operation's counters: calls (or requests) completed, how
// many failed, bytes moved (the system call's return value; sectors times
// 512 for block requests) and the latency buckets.
type Hist struct {
	Count   uint64
	Errors  uint64
	Bytes   uint64
	TotalNs uint64
	Slots   [Slots]uint64
}

// sub returns h - o, counter by counter.
func (h Hist) sub(o Hist) Hist {
	r := Hist{Count: h.Count - o.Count, Errors: h.Errors - o.Errors, Bytes: h.Bytes - o.Bytes, TotalNs: h.TotalNs - o.TotalNs}
	for i := range h.Slots {
		r.Slots[i] = h.Slots[i] - o.Slots[i]
	}
	return r
}

// Snapshot is every histogram at one moment.
type Snapshot struct {
	At    time.Time
	Hists [numKinds]Hist
}

// Sub returns the activity between o (earlier) and s.
func (s Snapshot) Sub(o Snapshot) Snapshot {
	r := Snapshot{At: s.At}
	for i := range s.Hists {
		r.Hists[i] = s.Hists[i].sub(o.Hists[i])
	}
	return r
}

// Report is what one print shows: the activity over [Start, End].
type Report struct {
	// Kind is "interval" (since the previous report) or "total" (since
	// tracing started).
	Kind  string
	PID   int
	Start time.Time
	End   time.Time
	Snap  Snapshot
}

// Bucket is one latency bucket in JSON: [LowUs, HighUs] microseconds.
type Bucket struct {
	LowUs  uint64 `json:"low_us"`
	HighUs uint64 `json:"high_us"`
	Count  uint64 `json:"count"`
}

// OpJSON is one histogram in the JSON report.
type OpJSON struct {
	Count   uint64   `json:"count"`
	Errors  uint64   `json:"errors"`
	Bytes   uint64   `json:"bytes"`
	AvgUs   float64  `json:"avg_us"`
	Buckets []Bucket `json:"buckets"`
}

// ReportJSON is the document -json prints, one per line.
type ReportJSON struct {
	Kind      string            `json:"kind"`
	PID       int               `json:"pid"`
	Start     time.Time         `json:"start"`
	End       time.Time         `json:"end"`
	Seconds   float64           `json:"seconds"`
	Syscalls  map[string]OpJSON `json:"syscalls"`
	Block     map[string]OpJSON `json:"block"`
	BlockNote string            `json:"block_scope"`
}

// blockScope says what the block histograms cover.
const blockScope = "per-process: requests the process inserted or issued; kernel-thread writeback and journal commits excluded"

func bucketRange(i int) (lo, hi uint64) {
	if i == 0 {
		return 0, 1
	}
	return 1 << i, 1<<(i+1) - 1
}

func opJSON(h Hist) OpJSON {
	o := OpJSON{Count: h.Count, Errors: h.Errors, Bytes: h.Bytes, Buckets: []Bucket{}}
	if h.Count > 0 {
		o.AvgUs = float64(h.TotalNs) / float64(h.Count) / 1e3
	}
	for i, c := range h.Slots {
		if c == 0 {
			continue
		}
		lo, hi := bucketRange(i)
		o.Buckets = append(o.Buckets, Bucket{LowUs: lo, HighUs: hi, Count: c})
	}
	return o
}

// JSON returns the report as its JSON document.
func (r Report) JSON() ReportJSON {
	j := ReportJSON{Kind: r.Kind, PID: r.PID, Start: r.Start.UTC(), End: r.End.UTC(),
		Seconds: r.End.Sub(r.Start).Seconds(), Syscalls: map[string]OpJSON{}, Block: map[string]OpJSON{}, BlockNote: blockScope}
	for i, name := range kindNames {
		if strings.HasPrefix(name, "block_") {
			j.Block[strings.TrimPrefix(name, "block_")] = opJSON(r.Snap.Hists[i])
		} else {
			j.Syscalls[name] = opJSON(r.Snap.Hists[i])
		}
	}
	return j
}

// WriteJSON writes the report as one line of JSON.
func (r Report) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(r.JSON())
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteText writes the report the way biolatency does: per operation a
// header with count, errors, bytes and mean, then the non-empty range of
// buckets with a star bar. Operations with no calls get one line.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s pid %d  %s .. %s (%.1fs)\n", r.Kind, r.PID,
		r.Start.Format("15:04:05"), r.End.Format("15:04:05"), r.End.Sub(r.Start).Seconds())
	for i, name := range kindNames {
		h := r.Snap.Hists[i]
		if h.Count == 0 {
			fmt.Fprintf(&b, "\n%s: none\n", name)
			continue
		}
		avg := float64(h.TotalNs) / float64(h.Count) / 1e3
		fmt.Fprintf(&b, "\n%s: count %d  errors %d  bytes %d  avg %.1f us\n", name, h.Count, h.Errors, h.Bytes, avg)
		writeBars(&b, h.Slots[:])
	}
	if strings.Contains(b.String(), "block_") {
		fmt.Fprintf(&b, "\n(block: %s)\n", blockScope)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeBars prints the buckets from the first to the last non-empty one.
func writeBars(b *strings.Builder, slots []uint64) {
	first, last := -1, -1
	var maxc uint64
	for i, c := range slots {
		if c > 0 {
			if first < 0 {
				first = i
			}
			last = i
			maxc = max(maxc, c)
		}
	}
	if first < 0 {
		return
	}
	const width = 40
	fmt.Fprintf(b, "%24s : %-10s distribution\n", "usecs", "count")
	for i := first; i <= last; i++ {
		lo, hi := bucketRange(i)
		n := int(slots[i] * width / maxc)
		if slots[i] > 0 && n == 0 {
			n = 1
		}
		fmt.Fprintf(b, "%10d -> %-10d : %-10d |%-40s|\n", lo, hi, slots[i], strings.Repeat("*", n))
	}
}
