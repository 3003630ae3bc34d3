package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps the accepted size suffixes to their multipliers. Binary
// (KiB, MiB, ...) and decimal (KB, MB, ...) suffixes are both accepted, as is
// a bare "B".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// parseSize parses a byte count: plain bytes ("1048576") or a whole number
// with a suffix ("64MiB", "1GiB", "512KB"). Negative, fractional and
// overflowing values are errors.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("bad size %q: no number", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: want bytes or a number with a suffix like 64MiB", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("bad size %q: negative", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize renders n bytes the short human way ("64 MiB", "1.5 GiB").
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTP"[exp]) + "iB"
}

// sizeFlag is a flag.Value for byte counts.
type sizeFlag struct{ p *int64 }

// String renders the size exactly, with the largest binary suffix that
// divides it ("32MiB", "1536KiB", "1000"), so that parseSize reads it back.
func (f sizeFlag) String() string {
	if f.p == nil || *f.p == 0 {
		return "0"
	}
	n := *f.p
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.p = n
	return nil
}

// newFlagSet returns a flag set for subcommand name that reports to stdio's
// stderr and returns errors instead of exiting.
func newFlagSet(name, argsUsage string, stdio IO) *flag.FlagSet {
	fs := flag.NewFlagSet("gfs "+name, flag.ContinueOnError)
	fs.SetOutput(stdio.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(stdio.Stderr, "usage: gfs %s [flags] %s\n\nflags:\n", name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs and checks the number of positional
// arguments lies in [minArgs, maxArgs] (maxArgs < 0: unbounded). -h exits 0,
// bad usage exits 2 after the flag package printed why.
func parseFlags(fs *flag.FlagSet, args []string, minArgs, maxArgs int) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &ExitError{Code: 0}
		}
		return &ExitError{Code: 2}
	}
	n := fs.NArg()
	if n < minArgs || (maxArgs >= 0 && n > maxArgs) {
		switch {
		case minArgs == maxArgs:
			fmt.Fprintf(fs.Output(), "%s: want %d argument(s), got %d\n", fs.Name(), minArgs, n)
		case maxArgs < 0:
			fmt.Fprintf(fs.Output(), "%s: want at least %d argument(s), got %d\n", fs.Name(), minArgs, n)
		default:
			fmt.Fprintf(fs.Output(), "%s: want %d to %d arguments, got %d\n", fs.Name(), minArgs, maxArgs, n)
		}
		fs.Usage()
		return &ExitError{Code: 2}
	}
	return nil
}

// timerFlags are the lease and heartbeat timers the daemons and gfs local
// share; zero values mean each package's documented default.
type timerFlags struct {
	leaseTTL          time.Duration
	heartbeatInterval time.Duration
	deadAfter         time.Duration
	gcGrace           time.Duration
}

func (t *timerFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&t.leaseTTL, "lease", 0, "chunk lease duration (0 = 60s)")
	fs.DurationVar(&t.heartbeatInterval, "heartbeat", 0, "chunkserver heartbeat interval (0 = 1s)")
	fs.DurationVar(&t.deadAfter, "dead-after", 0, "chunkserver declared dead after this long without heartbeat (0 = 10 heartbeats)")
	fs.DurationVar(&t.gcGrace, "gc-grace", 0, "deleted files are reclaimed after this long (0 = 1h)")
}

// newQuietLogger logs warnings and errors only, unless verbose.
func newQuietLogger(stdio IO, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: level}))
}

// newLogger returns a text logger on stderr.
func newLogger(stdio IO, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stdio.Stderr, &slog.HandlerOptions{Level: level}))
}
