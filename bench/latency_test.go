package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	// Samples 1..1000 ms in random order: the p-th percentile is p*10 ms.
	var l Latencies
	for _, i := range rand.Perm(1000) {
		l.Add(time.Duration(i+1) * time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{
		{50, 500 * time.Millisecond},
		{99, 990 * time.Millisecond},
		{99.9, 999 * time.Millisecond},
		{100, 1000 * time.Millisecond},
		{0.1, 1 * time.Millisecond},
		{0, 1 * time.Millisecond},      // clamped to the minimum
		{150, 1000 * time.Millisecond}, // clamped to the maximum
	} {
		if got := l.Percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestPercentileSmallSets(t *testing.T) {
	var empty Latencies
	if got := empty.Percentile(50); got != 0 {
		t.Errorf("empty p50 = %v, want 0", got)
	}
	var one Latencies
	one.Add(7)
	for _, p := range []float64{1, 50, 99, 99.9} {
		if got := one.Percentile(p); got != 7 {
			t.Errorf("one sample p%v = %v, want 7", p, got)
		}
	}
	// Four samples: nearest rank of p50 is 2 (the lower middle), p99 is 4.
	var four Latencies
	for _, d := range []time.Duration{40, 10, 30, 20} {
		four.Add(d)
	}
	if got := four.Percentile(50); got != 20 {
		t.Errorf("p50 of 10,20,30,40 = %v, want 20", got)
	}
	if got := four.Percentile(99); got != 40 {
		t.Errorf("p99 of 10,20,30,40 = %v, want 40", got)
	}
	if got := four.Percentile(25); got != 10 {
		t.Errorf("p25 of 10,20,30,40 = %v, want 10", got)
	}
}

func TestLatenciesMergeAndAddAfterQuery(t *testing.T) {
	var a, b Latencies
	a.Add(5)
	a.Add(1)
	if got := a.Percentile(100); got != 5 {
		t.Fatalf("max = %v, want 5", got)
	}
	b.Add(9)
	a.Merge(&b)
	a.Add(0) // after a sort: must be re-sorted
	if a.Count() != 4 {
		t.Fatalf("count = %d, want 4", a.Count())
	}
	if got := a.Percentile(100); got != 9 {
		t.Errorf("max after merge = %v, want 9", got)
	}
	if got := a.Percentile(25); got != 0 {
		t.Errorf("min after add = %v, want 0", got)
	}
}
