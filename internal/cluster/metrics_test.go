package cluster_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/internal/httpserv"
	"github.com/gfs-go/gfs/master"
)

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue is the value of the sample named exactly series in a scrape.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in scrape", series)
	return 0
}

// TestMasterMetrics: a real scrape of the master's collector before and
// after writing a 1.6-chunk file shows the file and its two chunks, and the
// three live chunkservers; /readyz follows Master.Ready.
func TestMasterMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, opts(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(master.NewCollector(c.Master()))
	hs, err := httpserv.New("127.0.0.1:0", httpserv.Options{Registry: reg,
		Ready: func() (bool, string) { return c.Master().Ready(4) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { hs.Close(); http.DefaultClient.CloseIdleConnections() }()
	before := scrapeMetrics(t, hs.Addr())
	if got := metricValue(t, before, `gfs_master_chunkservers{state="live"}`); got != 3 {
		t.Fatalf("live chunkservers = %v, want 3", got)
	}
	write(t, ctx, c.MasterAddr(), bytes.Repeat([]byte("0123456789abcdef"), 100000))
	after := scrapeMetrics(t, hs.Addr())
	for name, delta := range map[string]float64{"gfs_master_files": 1, "gfs_master_chunks": 2} {
		if d := metricValue(t, after, name) - metricValue(t, before, name); d != delta {
			t.Fatalf("%s rose by %v, want %v", name, d, delta)
		}
	}
	// Four chunkservers wanted, three live: not ready.
	resp, err := http.Get("http://" + hs.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with 3 of 4 chunkservers = %d", resp.StatusCode)
	}
	// Three wanted: ready once the start-up lease wait is over.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, why := c.Master().Ready(3)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready(3) still false (%s) after 30 s with 3 live chunkservers", why)
		}
	}
}
