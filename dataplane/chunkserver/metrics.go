package chunkserver

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the server's existing counters to Prometheus, read at
// scrape time so the data path does no extra work for metrics.
type Collector struct {
	s       *Server
	refused *prometheus.Desc
}

// NewCollector returns a collector for s; register it in the process's one
// registry.
func NewCollector(s *Server) *Collector {
	return &Collector{s: s, refused: prometheus.NewDesc("gfs_chunkserver_capability_refusals_total",
		"Data-channel requests refused for their capability, by reason.", []string{"reason"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.refused }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.Refusals()
	for _, v := range []struct {
		reason string
		n      uint64
	}{{"missing", r.Missing}, {"malformed", r.Malformed}, {"unknown_key", r.UnknownKey},
		{"forged", r.Forged}, {"expired", r.Expired}, {"wrong_chunk", r.WrongChunk}, {"wrong_op", r.WrongOp}} {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(v.n), v.reason)
	}
}
