package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/gfs-go/gfs/dataplane/iotrace"
)

// cmdTrace attaches eBPF tracepoints to a running chunkserver (any
// process, in fact) and prints latency histograms of its file system calls
// and block requests every -interval and, at the end (-duration elapsed,
// Ctrl-C, SIGTERM or the process exiting), the totals since it started.
func cmdTrace(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("trace", "", stdio)
	pid := fs.Int("pid", 0, "process id to trace")
	addr := fs.String("addr", "", "trace the process listening on this TCP HOST:PORT (a chunkserver's -addr)")
	interval := fs.Duration("interval", 5*time.Second, "print the last interval's histograms this often (0: only the final totals)")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted or the process exits)")
	asJSON := fs.Bool("json", false, "print one JSON object per report, one per line")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if (*pid == 0) == (*addr == "") {
		return usageError(fs, "pass exactly one of -pid and -addr")
	}
	if *interval < 0 || *duration < 0 {
		return usageError(fs, "-interval and -duration must not be negative")
	}
	target := *pid
	if *addr != "" {
		p, err := iotrace.PIDByAddr(*addr)
		if err != nil {
			return err
		}
		target = p
	}
	t, err := iotrace.Open(target)
	if errors.Is(err, iotrace.ErrPermission) {
		fmt.Fprintf(stdio.Stderr, "gfs trace: %v\n", err)
		return &ExitError{Code: 2}
	}
	if err != nil {
		return err
	}
	defer t.Close()
	return traceLoop(ctx, t, traceOptions{interval: *interval, duration: *duration, json: *asJSON}, stdio)
}

type traceOptions struct {
	interval, duration time.Duration
	json               bool
}

// traceLoop prints interval reports until the end, then the total.
func traceLoop(ctx context.Context, t *iotrace.Tracer, o traceOptions, stdio IO) error {
	base, err := t.Snapshot()
	if err != nil {
		return err
	}
	// On stderr even with -json: scripts wait for it to know the
	// programs are attached.
	fmt.Fprintf(stdio.Stderr, "gfs trace: tracing pid %d; Ctrl-C to stop\n", t.PID())
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var tick <-chan time.Time
	if o.interval > 0 {
		tk := time.NewTicker(o.interval)
		defer tk.Stop()
		tick = tk.C
	}
	// The target's exit ends the trace too: poll for it once a second.
	alive := time.NewTicker(time.Second)
	defer alive.Stop()
	prev := base
	print := func(kind string, from, to iotrace.Snapshot) error {
		r := iotrace.Report{Kind: kind, PID: t.PID(), Start: from.At, End: to.At, Snap: to.Sub(from)}
		if o.json {
			return r.WriteJSON(stdio.Stdout)
		}
		if err := r.WriteText(stdio.Stdout); err != nil {
			return err
		}
		_, err := fmt.Fprintln(stdio.Stdout)
		return err
	}
	for {
		select {
		case <-tick:
			s, err := t.Snapshot()
			if err != nil {
				return err
			}
			if err := print("interval", prev, s); err != nil {
				return err
			}
			prev = s
			continue
		case <-alive.C:
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", t.PID())); err == nil {
				continue
			}
			fmt.Fprintf(stdio.Stderr, "gfs trace: pid %d exited\n", t.PID())
		case <-ctx.Done():
		}
		s, err := t.Snapshot()
		if err != nil {
			return err
		}
		return print("total", base, s)
	}
}

// usageError reports a bad flag combination the way parseFlags reports a
// bad argument count: the message, the usage, exit status 2.
func usageError(fs *flag.FlagSet, msg string) error {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), msg)
	fs.Usage()
	return &ExitError{Code: 2}
}
