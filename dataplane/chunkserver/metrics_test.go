package chunkserver

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/internal/httpserv"
	"github.com/prometheus/client_golang/prometheus"
)

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestMetricsCapabilityRefused: a read with another chunk's capability shows
// up in a real scrape of gfs_chunkserver_capability_refusals_total.
func TestMetricsCapabilityRefused(t *testing.T) {
	noLeaks(t)
	cc := newCapCluster(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cc.servers[0]))
	hs, err := httpserv.New("127.0.0.1:0", httpserv.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { hs.Close(); http.DefaultClient.CloseIdleConnections() }()
	const line = `gfs_chunkserver_capability_refusals_total{reason="wrong_chunk"} `
	if body := scrape(t, hs.Addr()); !strings.Contains(body, line+"0\n") {
		t.Fatalf("before: want %q0 in\n%s", line, body)
	}
	if err := cc.dc.Write(withTok(cc.token(t, 8, rwa)), cc.b.addrs, cc.b.primaryAddr(), 8, 1, 0, []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := cc.dc.Read(withTok(cc.token(t, 7, capability.OpRead)), cc.b.addrs[0], 8, 1, 0, buf); !errors.Is(err, dataclient.ErrDenied) {
		t.Fatalf("read with chunk 7's capability: %v, want denied", err)
	}
	if body := scrape(t, hs.Addr()); !strings.Contains(body, line+"1\n") {
		t.Fatalf("after: want %q1 in\n%s", line, body)
	}
}
