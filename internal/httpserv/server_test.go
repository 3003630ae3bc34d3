package httpserv

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestEndpoints scrapes a counter before and after adding to it, and sees
// /readyz follow the readiness function.
func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "gfs_test_ops_total", Help: "test"})
	reg.MustRegister(c)
	var ready atomic.Bool
	s, err := New("127.0.0.1:0", Options{Registry: reg, Ready: func() (bool, string) {
		return ready.Load(), "waiting"
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "waiting") {
		t.Fatalf("/readyz before ready = %d %q", code, body)
	}
	ready.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz after ready = %d", code)
	}
	_, body := get(t, base+"/metrics")
	if !strings.Contains(body, "gfs_test_ops_total 0") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics before: %s", body)
	}
	c.Add(3)
	if _, body = get(t, base+"/metrics"); !strings.Contains(body, "gfs_test_ops_total 3") {
		t.Fatalf("metrics after: counter not 3")
	}
	if code, _ := get(t, base+"/debug/pprof/"); code != 200 {
		t.Fatalf("pprof without TLS = %d", code)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestNoRegistry(t *testing.T) {
	if _, err := New("127.0.0.1:0", Options{}); err != ErrNoRegistry {
		t.Fatalf("err = %v", err)
	}
}
