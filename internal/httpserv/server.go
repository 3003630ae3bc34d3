package httpserv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrNoRegistry is returned by New when Options.Registry is nil.
var ErrNoRegistry = errors.New("httpserv: no registry")

// Options configures a Server.
type Options struct {
	// Registry holds the process's metrics; required. New adds the Go
	// runtime (goroutines, memory) and process collectors to it.
	Registry *prometheus.Registry
	// Ready reports whether the daemon is ready to serve, with a reason
	// when it is not. Nil means always ready.
	Ready func() (bool, string)
	// TLS, when set, serves HTTPS. Its ClientAuth should be
	// tls.VerifyClientCertIfGiven so /metrics stays scrapable without a
	// certificate; pprof then refuses requests without a verified one.
	TLS *tls.Config
	// Handlers adds extra routes (the master's status page at "/").
	Handlers map[string]http.Handler
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Server is a running operator listener. Close stops it and waits for its
// serving goroutine.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup
	once sync.Once
}

// New listens on addr ("127.0.0.1:0" picks a port) and serves until Close.
func New(addr string, opts Options) (*Server, error) {
	if opts.Registry == nil {
		return nil, ErrNoRegistry
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	opts.Registry.MustRegister(collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if opts.Ready != nil {
			if ok, why := opts.Ready(); !ok {
				http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	guard := func(h http.HandlerFunc) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if opts.TLS != nil && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
				http.Error(w, "pprof requires a verified client certificate", http.StatusForbidden)
				return
			}
			h(w, r)
		})
	}
	mux.Handle("/debug/pprof/", guard(pprof.Index))
	mux.Handle("/debug/pprof/cmdline", guard(pprof.Cmdline))
	mux.Handle("/debug/pprof/profile", guard(pprof.Profile))
	mux.Handle("/debug/pprof/symbol", guard(pprof.Symbol))
	mux.Handle("/debug/pprof/trace", guard(pprof.Trace))
	for p, h := range opts.Handlers {
		mux.Handle(p, h)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpserv: listen %s: %w", addr, err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	s := &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener, ends open requests within 5 s and waits for the
// serving goroutine.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	return err
}
