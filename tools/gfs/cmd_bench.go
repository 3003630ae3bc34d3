package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/gfs-go/gfs/internal/tlsflag"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/gfs-go/gfs/bench"
	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control/tlsconfig"
)

// cmdBench runs the benchmark suite: machine-limit baselines, then the
// workloads against an embedded cluster (or -master), printing a table or,
// with -json, the report document. Progress goes to stderr.
func cmdBench(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("bench", "", stdio)
	var o bench.Options
	workloads := fs.String("workload", strings.Join(bench.Workloads, ","), "comma-separated workloads to run: "+strings.Join(bench.AllWorkloads, ", ")+
		" (the default leaves out the MapReduce ones, "+strings.Join(bench.MRWorkloads, " and ")+")")
	fs.Var(stringAlias{workloads}, "workloads", "same as -workload")
	o.MRInputBytes = bench.DefaultMRInputBytes
	fs.Var(sizeFlag{&o.MRInputBytes}, "mr-input-bytes", "input of each MapReduce workload, wordcount and sort (e.g. 1GiB)")
	fs.IntVar(&o.Clients, "clients", bench.DefaultClients, "concurrent clients")
	o.SizeBytes = bench.DefaultSizeBytes
	fs.Var(sizeFlag{&o.SizeBytes}, "size", "each client's file for seqwrite/seqread/randread (e.g. 64MiB)")
	recordBytes := int64(bench.DefaultRecordBytes)
	fs.Var(sizeFlag{&recordBytes}, "record-bytes", "append record size; also the rpc baseline's request size")
	fs.IntVar(&o.AppendWindow, "append-window", bench.DefaultAppendWindow, "records each appendstream client keeps in flight")
	fs.DurationVar(&o.Duration, "duration", bench.DefaultDuration, "duration of each timed workload (randread, append, appendstream, metadata)")
	fs.DurationVar(&o.BaselineDuration, "baseline-duration", bench.DefaultBaselineDuration, "duration of each baseline measurement (serve and odirect make two)")
	fs.BoolVar(&o.NoBaselines, "no-baselines", false, "skip the baselines (ratios are then 0)")
	fs.IntVar(&o.Runs, "runs", bench.DefaultRuns, "repeat everything K times and report medians and spread")
	asJSON := fs.Bool("json", false, "print the report as one JSON document instead of a table")
	fs.StringVar(&o.MasterAddr, "master", "", "run against the cluster at HOST:PORT instead of an embedded one")
	fs.StringVar(&o.Dir, "dir", "", "directory for the embedded cluster and the baselines' files (default: the system temp dir)")
	fs.Var(sizeFlag{&o.ChunkSizeBytes}, "chunk-size", "embedded cluster's chunk size (0 = 64MiB)")
	fs.IntVar(&o.Chunkservers, "chunkservers", bench.DefaultChunkservers, "embedded cluster's chunkservers")
	fs.IntVar(&o.Replication, "replication", bench.DefaultReplication, "replication of the files the workloads create")
	fs.DurationVar(&o.LeaseTTL, "lease", 0, "embedded cluster's lease TTL (0 = the master's default, 60s); a fresh master grants leases only after one TTL")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of each workload's measured phase to FILE.WORKLOAD")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the data pattern and random offsets (0 = random)")
	verbose := fs.Bool("v", false, "log the embedded cluster's warnings to stderr")
	var tlsF tlsflag.Flags
	tlsF.Register(fs, "client", false) // with -master: a cluster running TLS
	dataTLS := fs.Bool("data-tls", false, "with -master: encrypt the data channel (a cluster whose chunkservers run -data-tls)")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if recordBytes > 1<<30 {
		return fmt.Errorf("-record-bytes %d: too large", recordBytes)
	}
	o.RecordBytes = int(recordBytes)
	o.Workloads = nil
	for _, w := range strings.Split(*workloads, ",") {
		if w = strings.TrimSpace(w); w != "" {
			o.Workloads = append(o.Workloads, w)
		}
	}
	if len(o.Workloads) == 0 {
		return errors.New("-workload: no workload named")
	}
	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the relay baseline: %w", err)
	}
	o.RelayCommand = func(ctx context.Context, args []string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append([]string{"bench-relay-node"}, args...)...)
	}
	var clientTLS *tls.Config
	if o.MasterAddr != "" {
		// The environment's TLS settings only matter against -master.
		files, err := tlsF.Resolve(stdio.Getenv)
		if err != nil {
			return err
		}
		if clientTLS, err = tlsconfig.Client(files); err != nil {
			return err
		}
	} else if tlsF.Files.Enabled() || tlsF.Dir != "" || *dataTLS {
		return errors.New("-tls-dir, -tls-cert/-tls-key/-tls-ca and -data-tls need -master (the embedded cluster runs without TLS: " +
			"measure a TLS cluster with gfs local and -master, see BENCHMARKS.md)")
	}
	if *dataTLS && clientTLS == nil {
		return errors.New("-data-tls needs TLS credentials: set -tls-dir DIR or GFS_TLS_DIR")
	}
	o.Connect = bench.ConnectClient(client.Options{Logger: o.Logger, TLS: clientTLS, DataTLS: *dataTLS}, o.Replication)
	o.StartCluster = bench.StartEmbeddedCluster
	o.Progress = stdio.Stderr

	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	rep.Config.Command = strings.TrimSpace("gfs bench " + strings.Join(args, " "))
	if *asJSON {
		return rep.WriteJSON(stdio.Stdout)
	}
	return rep.WriteTable(stdio.Stdout)
}

// cmdBenchRelayNode is one hop of the raw relay baseline (a child process of
// gfs bench): it serves until its stdin closes.
func cmdBenchRelayNode(ctx context.Context, args []string, stdio IO) error {
	return bench.RunRelayNodeCommand(ctx, args, stdio.Stdin, stdio.Stdout)
}

// stringAlias is a second name of a string flag.
type stringAlias struct{ p *string }

func (a stringAlias) String() string {
	if a.p == nil {
		return ""
	}
	return *a.p
}

func (a stringAlias) Set(v string) error { *a.p = v; return nil }
