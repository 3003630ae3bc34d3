package bench

import (
	"math"
	"slices"
	"time"
)

// Latencies records operation latencies exactly (one sample per operation).
// A Latencies is owned by one goroutine; merge them with Merge afterwards.
type Latencies struct {
	samples []time.Duration
	sorted  bool
}

// Add records one operation that took d.
func (l *Latencies) Add(d time.Duration) {
	l.samples = append(l.samples, d)
	l.sorted = false
}

// Merge adds every sample of o to l.
func (l *Latencies) Merge(o *Latencies) {
	l.samples = append(l.samples, o.samples...)
	l.sorted = false
}

// Count is the number of samples.
func (l *Latencies) Count() int { return len(l.samples) }

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100): the
// smallest sample such that at least p percent of the samples are <= it.
// It returns 0 when there are no samples; p is clamped to (0, 100].
func (l *Latencies) Percentile(p float64) time.Duration {
	n := len(l.samples)
	if n == 0 {
		return 0
	}
	if !l.sorted {
		slices.Sort(l.samples)
		l.sorted = true
	}
	// Nearest rank: ceil(p/100 * n), 1-based. The epsilon keeps 99.9% of 1000
	// samples at rank 999 despite float rounding.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	rank = max(1, min(rank, n))
	return l.samples[rank-1]
}

// ms converts a duration to float milliseconds for output.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
