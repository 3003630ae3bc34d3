package iotrace

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReportSubJSONAndText(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var a, b Snapshot
	a.At, b.At = t0, t0.Add(2*time.Second)
	a.Hists[1] = Hist{Count: 2, Bytes: 8192, TotalNs: 4000, Slots: [Slots]uint64{0: 1, 1: 1}}
	b.Hists[1] = Hist{Count: 7, Errors: 1, Bytes: 8192 + 5*4096, TotalNs: 4000 + 5*10000, Slots: [Slots]uint64{0: 1, 1: 1, 3: 5}}
	b.Hists[7] = Hist{Count: 1, Bytes: 4096, TotalNs: 100000, Slots: [Slots]uint64{6: 1}}
	r := Report{Kind: "interval", PID: 42, Start: a.At, End: b.At, Snap: b.Sub(a)}

	var out bytes.Buffer
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("want one line, got %q", out.String())
	}
	var j ReportJSON
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	pw := j.Syscalls["pwrite64"]
	if pw.Count != 5 || pw.Errors != 1 || pw.Bytes != 5*4096 || pw.AvgUs != 10 {
		t.Fatalf("pwrite64 = %+v", pw)
	}
	if len(pw.Buckets) != 1 || pw.Buckets[0] != (Bucket{LowUs: 8, HighUs: 15, Count: 5}) {
		t.Fatalf("pwrite64 buckets = %+v", pw.Buckets)
	}
	if bw := j.Block["write"]; bw.Count != 1 || bw.Buckets[0].LowUs != 64 || bw.Buckets[0].HighUs != 127 {
		t.Fatalf("block write = %+v", bw)
	}
	if j.PID != 42 || j.Kind != "interval" || j.Seconds != 2 || len(j.Syscalls) != 6 || len(j.Block) != 3 {
		t.Fatalf("report = %+v", j)
	}

	out.Reset()
	if err := r.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"interval pid 42",
		"pwrite64: count 5  errors 1  bytes 20480  avg 10.0 us",
		"         8 -> 15         : 5          |****************************************|",
		"pread64: none",
		"block_write: count 1",
		"per-process",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestBucketRange(t *testing.T) {
	cases := []struct {
		i      int
		lo, hi uint64
	}{{0, 0, 1}, {1, 2, 3}, {2, 4, 7}, {10, 1024, 2047}}
	for _, c := range cases {
		if lo, hi := bucketRange(c.i); lo != c.lo || hi != c.hi {
			t.Errorf("bucket %d = [%d, %d], want [%d, %d]", c.i, lo, hi, c.lo, c.hi)
		}
	}
}
