package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gfs-go/gfs/internal/tlsflag"

	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/chunkserver"
	"github.com/gfs-go/gfs/internal/cpuinfo"
	"github.com/gfs-go/gfs/internal/httpserv"
	"github.com/prometheus/client_golang/prometheus"
)

// cmdChunkserver runs a chunkserver daemon until SIGINT/SIGTERM.
func cmdChunkserver(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("chunkserver", "", stdio)
	var opts chunkserver.Options
	fs.StringVar(&opts.MasterAddr, "master", "", "master address HOST:PORT (default $GFS_MASTER)")
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:0", "listen address HOST:PORT for the data and control channels")
	fs.StringVar(&opts.Dir, "dir", "", "chunk store directory (required)")
	fs.StringVar(&opts.Rack, "rack", "", "rack name for placement (optional)")
	fs.Var(sizeFlag{&opts.PushBufferBytes}, "push-buffer", "cap on buffered pushed data, `SIZE` like 256MiB (0 = 256 MiB)")
	fs.DurationVar(&opts.PushTimeout, "push-timeout", 0, "pushed data never written is dropped after (0 = 60s)")
	fs.DurationVar(&opts.LeaseMargin, "lease-margin", 0, "safety margin subtracted from leases (0 = 2s, capped to lease/10)")
	fs.Var(sizeFlag{&opts.Store.ChunkSize}, "chunk-size", "maximum chunk `SIZE` (0 = 64 MiB; the master's value wins)")
	fs.Var(sizeFlag{&opts.Store.ScrubRate}, "scrub-rate", "`BYTES` per second the scrubber verifies (0 = 32 MiB/s)")
	fs.DurationVar(&opts.Store.ScrubIdle, "scrub-idle", 0, "a chunk is scrubbed after this long without writes (0 = 30s)")
	fs.DurationVar(&opts.ReplicaCheckInterval, "replica-check", time.Second, "compare one chunk's block checksums with its other replicas this often, reporting divergent replicas to the master (0 = off)")
	fs.DurationVar(&opts.IdleTimeout, "idle-timeout", 0, "close a data connection idle this long after its last answer (0 = 2m)")
	fs.IntVar(&opts.MaxConnsPerHost, "max-conns-per-host", 0, "open connections allowed from one remote host (0 = 4096, negative = no cap)")
	sendMode := fs.String("send-mode", "default", "how reads move chunk bytes to the socket: default, sendfile (zero-copy) or copy (pread+write)")
	var timers timerFlags
	fs.DurationVar(&timers.heartbeatInterval, "heartbeat", 0, "heartbeat interval (0 = 1s; the master's value wins)")
	var tlsF tlsflag.Flags
	tlsF.Register(fs, "chunkserver", true)
	httpAddr := fs.String("http-addr", "", "operator HTTP listener HOST:PORT for /metrics, /healthz, /readyz, /debug/pprof/ (empty = none)")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if opts.MasterAddr == "" && stdio.Getenv != nil {
		opts.MasterAddr = stdio.Getenv("GFS_MASTER")
	}
	if opts.MasterAddr == "" || opts.Dir == "" {
		fmt.Fprintln(stdio.Stderr, "gfs chunkserver: -master (or GFS_MASTER) and -dir are required")
		fs.Usage()
		return &ExitError{Code: 2}
	}
	opts.HeartbeatInterval = timers.heartbeatInterval
	switch *sendMode {
	case "default":
		opts.SendMode = chunkserver.SendDefault
	case "sendfile":
		opts.SendMode = chunkserver.SendFile
	case "copy":
		opts.SendMode = chunkserver.SendCopy
	default:
		return fmt.Errorf("-send-mode %q: want default, sendfile or copy", *sendMode)
	}
	files, err := tlsF.Resolve(stdio.Getenv)
	if err != nil {
		return err
	}
	opts.TLS = files
	opts.Logger = newLogger(stdio, *verbose).With("node", "chunkserver")
	s, err := chunkserver.New(opts)
	if err != nil {
		return err
	}
	opts.Logger.Info("chunkserver serving", "addr", s.Addr(), "dir", opts.Dir, "master", opts.MasterAddr)
	opts.Logger.Info("cpu", cpuinfo.Describe().LogAttrs()...)
	if *httpAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(chunkserver.NewCollector(s))
		httpTLS, err := tlsconfig.HTTP(files)
		var hs *httpserv.Server
		if err == nil {
			hs, err = httpserv.New(*httpAddr, httpserv.Options{Registry: reg, Logger: opts.Logger, TLS: httpTLS})
		}
		if err != nil {
			s.Close()
			return err
		}
		defer hs.Close()
		opts.Logger.Info("http listener", "http_addr", hs.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-ctx.Done():
		opts.Logger.Info("chunkserver shutting down")
	case err = <-done:
		done <- err
	}
	cerr := s.Close()
	serr := <-done
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return errors.Join(serr, cerr)
	}
	return cerr
}
