package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/gfs-go/gfs/internal/tlsflag"
	"net"

	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/cpuinfo"
	"github.com/gfs-go/gfs/internal/httpserv"
	"github.com/gfs-go/gfs/master"
	"github.com/prometheus/client_golang/prometheus"
)

// cmdMaster runs the master daemon until SIGINT/SIGTERM.
func cmdMaster(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("master", "", stdio)
	addr := fs.String("addr", "127.0.0.1:7000", "listen address HOST:PORT")
	dir := fs.String("dir", "", "directory for the op log and checkpoints (required)")
	var opts master.Options
	fs.Var(sizeFlag{&opts.ChunkSize}, "chunk-size", "maximum chunk `SIZE`, e.g. 64MiB (0 = 64 MiB)")
	fs.IntVar(&opts.Replication, "replication", 0, "default replica count (0 = 3)")
	fs.IntVar(&opts.CheckpointEvery, "checkpoint-every", 0, "op log records between checkpoints (0 = 100000)")
	fs.IntVar(&opts.MaxConnsPerHost, "max-conns-per-host", 0, "open connections allowed from one remote host (0 = 4096, negative = no cap)")
	var timers timerFlags
	timers.register(fs)
	var tlsF tlsflag.Flags
	tlsF.Register(fs, "master", true)
	readyServers := fs.Int("ready-chunkservers", 1, "live chunkservers /readyz waits for")
	httpAddr := fs.String("http-addr", "", "operator HTTP listener HOST:PORT for /metrics, /healthz, /readyz, /debug/pprof/ (empty = none)")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprintln(stdio.Stderr, "gfs master: -dir is required")
		fs.Usage()
		return &ExitError{Code: 2}
	}
	files, err := tlsF.Resolve(stdio.Getenv)
	if err != nil {
		return err
	}
	opts.Dir = *dir
	opts.LeaseTTL = timers.leaseTTL
	opts.HeartbeatInterval = timers.heartbeatInterval
	opts.DeadAfter = timers.deadAfter
	opts.GCGrace = timers.gcGrace
	opts.TLS = files
	opts.Logger = newLogger(stdio, *verbose).With("node", "master")
	m, err := master.New(opts)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		m.Close()
		return err
	}
	opts.Logger.Info("master serving", "addr", lis.Addr().String(), "dir", *dir)
	opts.Logger.Info("cpu", cpuinfo.Describe().LogAttrs()...)
	if *httpAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(master.NewCollector(m))
		httpTLS, err := tlsconfig.HTTP(files)
		var hs *httpserv.Server
		if err == nil {
			hs, err = httpserv.New(*httpAddr, httpserv.Options{Registry: reg, Logger: opts.Logger, TLS: httpTLS,
				Ready: func() (bool, string) { return m.Ready(*readyServers) }})
		}
		if err != nil {
			m.Close()
			lis.Close()
			return err
		}
		defer hs.Close()
		opts.Logger.Info("http listener", "http_addr", hs.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- m.Serve(lis) }()
	select {
	case <-ctx.Done():
		opts.Logger.Info("master shutting down")
	case err = <-done:
		// Serve returned by itself: report why after cleaning up.
		done <- err
	}
	cerr := m.Close()
	lis.Close()
	serr := <-done
	if serr != nil && !errors.Is(serr, net.ErrClosed) && !errors.Is(serr, master.ErrClosed) {
		return errors.Join(serr, cerr)
	}
	return cerr
}
