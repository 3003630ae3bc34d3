package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/mapreduce/apps"
	"github.com/gfs-go/gfs/mapreduce/mrlocal"
)

// cmdLocal runs a whole cluster (master plus N chunkservers on loopback) in
// the foreground until SIGINT/SIGTERM. It prints a line starting with
// "ready" once the cluster serves. Restarting it on the same -dir keeps the
// data. By default the cluster runs mutual TLS and capabilities with a CA
// and certificates it creates in -dir/tls (named by tls-dir= on the ready
// line); -insecure runs it plaintext.
func cmdLocal(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("local", "", stdio)
	var opts cluster.Options
	fs.StringVar(&opts.Dir, "dir", "", "root directory of the cluster's data (required)")
	fs.IntVar(&opts.Chunkservers, "chunkservers", 3, "number of chunkservers")
	fs.StringVar(&opts.MasterAddr, "master-addr", "", "master listen address HOST:PORT (default: last one used in -dir, else a free port)")
	fs.Var(sizeFlag{&opts.ChunkSize}, "chunk-size", "maximum chunk `SIZE`, e.g. 64MiB (0 = 64 MiB)")
	fs.IntVar(&opts.Replication, "replication", 0, "default replica count (0 = min(3, chunkservers))")
	var timers timerFlags
	timers.register(fs)
	fs.DurationVar(&opts.ReadyTimeout, "ready-timeout", 0, "how long to wait for the chunkservers to register (0 = 30s)")
	fs.StringVar(&opts.TLSDir, "tls-dir", "", "`DIR` of the cluster's CA and certificates in the gfs cert layout (master.pem, csI.pem, client.pem, ca.pem); "+
		"created on first start, reused after (missing or expiring certificates are renewed, the CA never replaced) (default: DIR/tls under -dir)")
	insecure := fs.Bool("insecure", false, "run plaintext: no TLS and no capabilities (anyone who can reach a port can read, overwrite and delete data)")
	fs.BoolVar(&opts.DataTLS, "data-tls", false, "encrypt the data channel too (clients then need -data-tls or GFS_DATA_TLS=1)")
	fs.DurationVar(&opts.Chunkserver.ReplicaCheckInterval, "replica-check", time.Second, "each chunkserver compares one chunk's block checksums with its other replicas this often, reporting divergent replicas to the master (0 = off)")
	verbose := fs.Bool("v", false, "log at debug level (default: warnings only)")
	mrWorkers := fs.Int("mr-workers", 0, "also run a MapReduce coordinator and this many workers, worker i beside chunkserver i mod N")
	coordAddr := fs.String("coordinator-addr", "", "coordinator listen address HOST:PORT with -mr-workers (default: a free port)")
	mrSlots := fs.Int("mr-slots", 0, "attempts each worker runs at once (0 = CPU count)")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if opts.Dir == "" {
		fmt.Fprintln(stdio.Stderr, "gfs local: -dir is required")
		fs.Usage()
		return &ExitError{Code: 2}
	}
	switch {
	case *insecure && (opts.TLSDir != "" || opts.DataTLS):
		return errors.New("-insecure with -tls-dir or -data-tls: pick one")
	case *insecure:
	case opts.TLSDir == "":
		opts.TLSDir = filepath.Join(opts.Dir, "tls")
	}
	if opts.TLSDir != "" {
		opts.TLSDir = absDir(opts.TLSDir)
	}
	opts.LeaseTTL = timers.leaseTTL
	opts.HeartbeatInterval = timers.heartbeatInterval
	opts.DeadAfter = timers.deadAfter
	opts.GCGrace = timers.gcGrace
	opts.Logger = newQuietLogger(stdio, *verbose)
	c, err := cluster.Start(ctx, opts)
	if err != nil {
		return err
	}
	var mr *mrlocal.Local
	if *mrWorkers > 0 {
		mr, err = mrlocal.Start(ctx, c, mrlocal.Options{Dir: filepath.Join(opts.Dir, "mr"), Workers: *mrWorkers, Slots: *mrSlots,
			CoordinatorAddr: *coordAddr, Apps: apps.All(), DataTLS: opts.DataTLS, Logger: opts.Logger})
		if err != nil {
			c.Close()
			return err
		}
	}
	ready := fmt.Sprintf("ready master=%s chunkservers=%s dir=%s", c.MasterAddr(), strings.Join(c.ChunkserverAddrs(), ","), opts.Dir)
	if mr != nil {
		ready += " coordinator=" + mr.CoordinatorAddr()
	}
	if opts.TLSDir != "" {
		ready += " tls-dir=" + opts.TLSDir
	}
	if opts.DataTLS {
		ready += " data-tls=true"
	}
	fmt.Fprintln(stdio.Stdout, ready)
	switch {
	case opts.TLSDir == "":
		fmt.Fprintln(stdio.Stderr, "gfs local: running -insecure: plaintext and unauthenticated")
	case opts.DataTLS:
		fmt.Fprintf(stdio.Stderr, "gfs local: clients need GFS_TLS_DIR=%s and GFS_DATA_TLS=1 (or -tls-dir %s -data-tls)\n", opts.TLSDir, opts.TLSDir)
	default:
		fmt.Fprintf(stdio.Stderr, "gfs local: clients need GFS_TLS_DIR=%s (or -tls-dir %s)\n", opts.TLSDir, opts.TLSDir)
	}
	<-ctx.Done()
	fmt.Fprintln(stdio.Stderr, "gfs local: shutting down")
	if mr != nil {
		if err := mr.Close(); err != nil {
			fmt.Fprintf(stdio.Stderr, "gfs local: mapreduce: %v\n", err)
		}
	}
	return c.Close()
}
