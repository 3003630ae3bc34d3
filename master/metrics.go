package master

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the master's state as gauges computed at scrape time
// under the master's read lock, so no RPC pays for metrics.
type Collector struct {
	m                                             *Master
	servers, files, chunks, leases, queue, copies *prometheus.Desc
	disk                                          *prometheus.Desc
}

// NewCollector returns a collector for m; register it in the process's one
// registry.
func NewCollector(m *Master) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{m: m,
		servers: d("gfs_master_chunkservers", "Registered chunkservers by state (live, dead).", "state"),
		files:   d("gfs_master_files", "Files in the namespace."),
		chunks:  d("gfs_master_chunks", "Chunks in the chunk table."),
		leases:  d("gfs_master_active_leases", "Chunk leases currently held."),
		queue:   d("gfs_master_rereplication_queue", "Chunks whose replica count may be off target, awaiting a check."),
		copies:  d("gfs_master_rereplication_copies_in_flight", "Re-replication copies in flight."),
		disk:    d("gfs_master_chunkserver_disk_bytes", "Disk capacity and free bytes each chunkserver last reported.", "addr", "kind"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.servers, c.files, c.chunks, c.leases, c.queue, c.copies, c.disk} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	m := c.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	live, dead := 0, 0
	for _, s := range m.servers {
		if s.alive {
			live++
		} else {
			dead++
		}
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(s.capacity), s.addr, "capacity")
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(s.free), s.addr, "free")
	}
	g(c.servers, live, "live")
	g(c.servers, dead, "dead")
	files := 0
	for _, n := range m.st.nodes {
		if !n.dir {
			files++
		}
	}
	g(c.files, files)
	g(c.chunks, len(m.st.chunks))
	g(c.leases, len(m.leases))
	g(c.queue, len(m.needCheck))
	g(c.copies, len(m.copies))
}

// Ready reports whether the master is out of its start-up grace (lease wait)
// and has at least min live chunkservers, for /readyz.
func (m *Master) Ready(min int) (bool, string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if time.Now().Before(m.graceUntil) {
		return false, "start-up lease wait"
	}
	live := 0
	for _, s := range m.servers {
		if s.alive {
			live++
		}
	}
	if live < min {
		return false, "too few live chunkservers"
	}
	return true, ""
}
