// Command gfs is the one binary of GFS-Go: the daemons (master, chunkserver),
// an embedded local cluster, the client commands and the benchmark suite.
//
// Each subcommand lives in its own file (cmd_NAME.go) as a function with the
// signature of command; main only dispatches.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// IO is what a subcommand may touch of its process, injected so that
// subcommands are testable without a process.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// command runs one subcommand with the arguments after its name.
type command struct {
	run   func(ctx context.Context, args []string, stdio IO) error
	usage string
	// hidden commands are internal (child processes of the benchmark suite).
	hidden bool
}

// ExitError asks main to exit with Code after printing nothing more.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

func commands() map[string]command {
	return map[string]command{
		"master":           {run: cmdMaster, usage: "run the master daemon"},
		"chunkserver":      {run: cmdChunkserver, usage: "run a chunkserver daemon"},
		"local":            {run: cmdLocal, usage: "run a whole cluster on loopback in the foreground"},
		"put":              {run: cmdPut, usage: "copy a local file (- for stdin) into GFS"},
		"get":              {run: cmdGet, usage: "copy a GFS file to a local file (- for stdout)"},
		"cat":              {run: cmdCat, usage: "print a GFS file (-records: its appended records)"},
		"ls":               {run: cmdLs, usage: "list a directory"},
		"mkdir":            {run: cmdMkdir, usage: "create a directory"},
		"mv":               {run: cmdMv, usage: "rename a file or directory"},
		"rm":               {run: cmdRm, usage: "delete a file or directory"},
		"stat":             {run: cmdStat, usage: "describe a file (-chunks: with its chunks and replicas)"},
		"append":           {run: cmdAppend, usage: "record-append stdin as one record, print its offset"},
		"fsck":             {run: cmdFsck, usage: "report missing, under-replicated and corrupt chunks"},
		"cert":             {run: cmdCert, usage: "create a test CA and node certificates for TLS (-tls-cert/-tls-key/-tls-ca)"},
		"trace":            {run: cmdTrace, usage: "latency histograms of a chunkserver's file syscalls and block I/O (eBPF, root)"},
		"mr":               {run: cmdMR, usage: "MapReduce: coordinator, worker, run a job (-app wordcount|grep|index|sort|identity, streaming), status"},
		"bench":            {run: cmdBench, usage: "run the benchmark suite (embedded cluster unless -master)"},
		"bench-relay-node": {run: cmdBenchRelayNode, hidden: true},
	}
}

func main() {
	os.Exit(run(os.Args[1:], IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}

func run(args []string, stdio IO) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdio.Stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stdio.Stderr, "gfs: unknown command %q\n", args[0])
		printUsage(stdio.Stderr, cmds)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.run(ctx, args[1:], stdio)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintf(stdio.Stderr, "gfs %s: %v\n", args[0], tlsHint(err))
	return 1
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: gfs COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n, c := range cmds {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].usage)
	}
	fmt.Fprintln(w, "\nRun 'gfs COMMAND -h' for a command's flags.")
}
