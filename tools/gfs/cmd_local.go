package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/gfs-go/gfs/internal/cluster"
)

// cmdLocal runs a whole cluster (master plus N chunkservers on loopback) in
// the foreground until SIGINT/SIGTERM. It prints a line starting with
// "ready" once the cluster serves. Restarting it on the same -dir keeps the
// data.
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
	fs.StringVar(&opts.TLSDir, "tls-dir", "", "run the control channel with mutual TLS, certificates in this directory "+
		"(gfs cert layout: master.pem, csI.pem, client.pem; missing ones are created)")
	verbose := fs.Bool("v", false, "log at debug level (default: warnings only)")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if opts.Dir == "" {
		fmt.Fprintln(stdio.Stderr, "gfs local: -dir is required")
		fs.Usage()
		return &ExitError{Code: 2}
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
	fmt.Fprintf(stdio.Stdout, "ready master=%s chunkservers=%s dir=%s\n", c.MasterAddr(), strings.Join(c.ChunkserverAddrs(), ","), opts.Dir)
	if opts.TLSDir != "" {
		f := c.TLSFiles("client")
		fmt.Fprintf(stdio.Stderr, "gfs local: clients need -tls-cert %s -tls-key %s -tls-ca %s (or GFS_TLS_CERT, GFS_TLS_KEY, GFS_TLS_CA)\n", f.Cert, f.Key, f.CA)
	}
	<-ctx.Done()
	fmt.Fprintln(stdio.Stderr, "gfs local: shutting down")
	return c.Close()
}
