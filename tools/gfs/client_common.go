package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/gfs-go/gfs/internal/tlsflag"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/term"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// masterFlags are a client subcommand's -master and TLS flags.
type masterFlags struct {
	addr    string
	tls     tlsflag.Flags
	dataTLS bool
}

// masterFlag registers -master and the TLS flags on a client subcommand's
// flag set.
func masterFlag(fs *flag.FlagSet) *masterFlags {
	m := &masterFlags{}
	fs.StringVar(&m.addr, "master", "", "master address HOST:PORT (default $GFS_MASTER)")
	m.tls.Register(fs, "client", false)
	fs.BoolVar(&m.dataTLS, "data-tls", false, "encrypt the data channel too (TLS to the chunkservers; needed when they run -data-tls) (default $GFS_DATA_TLS)")
	return m
}

// dial connects to the master named by -master or GFS_MASTER, with TLS when
// the TLS flags (or their environment variables) name certificates.
func dial(ctx context.Context, m *masterFlags, stdio IO) (*client.Client, error) {
	master := m.addr
	if master == "" && stdio.Getenv != nil {
		master = stdio.Getenv("GFS_MASTER")
	}
	if master == "" {
		return nil, errors.New("no master: pass -master HOST:PORT or set GFS_MASTER")
	}
	files, err := m.tls.Resolve(stdio.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := tlsconfig.Client(files)
	if err != nil {
		return nil, err
	}
	dataTLS, err := m.wantDataTLS(stdio)
	if err != nil {
		return nil, err
	}
	if dataTLS && cfg == nil {
		return nil, errors.New("-data-tls needs TLS credentials: set -tls-dir DIR or GFS_TLS_DIR")
	}
	return client.Dial(ctx, master, client.Options{TLS: cfg, DataTLS: dataTLS})
}

// wantDataTLS reports -data-tls, or $GFS_DATA_TLS when the flag is not set.
func (m *masterFlags) wantDataTLS(stdio IO) (bool, error) {
	if m.dataTLS || stdio.Getenv == nil {
		return m.dataTLS, nil
	}
	v := stdio.Getenv("GFS_DATA_TLS")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("GFS_DATA_TLS=%q: want true or false", v)
	}
	return b, nil
}

// tlsHint adds to a TLS mismatch between this client and the cluster the
// flags that fix it (run applies it to every command's error before
// printing it; the result is for people, not for errors.Is).
func tlsHint(err error) error {
	var mm *client.TLSMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mm) && mm.ServerTLS:
		return fmt.Errorf("master %s requires TLS: set -tls-dir DIR or GFS_TLS_DIR (gfs local prints tls-dir= on its ready line) [%v]", mm.Addr, mm.Err)
	case errors.As(err, &mm):
		return fmt.Errorf("master %s does not use TLS (it runs -insecure): drop -tls-dir/-tls-cert and GFS_TLS_DIR/GFS_TLS_* for this cluster [%v]", mm.Addr, mm.Err)
	case errors.Is(err, dataclient.ErrDataTLSRequired):
		return fmt.Errorf("%w: set -data-tls or GFS_DATA_TLS=1", err)
	case errors.Is(err, dataclient.ErrNoDataTLS):
		return fmt.Errorf("%w: drop -data-tls and GFS_DATA_TLS for this cluster", err)
	}
	return err
}

// printJSON writes v as indented JSON followed by a newline.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress draws a one-line progress bar on a terminal; it draws nothing
// when disabled.
type progress struct {
	w       io.Writer
	enabled bool
	label   string
	total   int64 // < 0 when unknown
	done    int64
	start   time.Time
	last    time.Time
}

// newProgress returns a progress bar drawn on stderr when stdout is a
// terminal, and a silent one otherwise.
func newProgress(stdio IO, label string, total int64) *progress {
	return &progress{w: stdio.Stderr, enabled: isTerminal(stdio.Stdout) && isTerminal(stdio.Stderr), label: label, total: total, start: time.Now()}
}

func (p *progress) add(n int64) {
	p.done += n
	if !p.enabled {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	secs := time.Since(p.start).Seconds()
	rate := ""
	if secs > 0 {
		rate = formatSize(int64(float64(p.done)/secs)) + "/s"
	}
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s %s\x1b[K", p.label, formatSize(p.done), rate)
		return
	}
	const width = 30
	filled := int(float64(width) * float64(p.done) / float64(p.total))
	filled = min(max(filled, 0), width)
	bar := make([]byte, width)
	for i := range bar {
		if i < filled {
			bar[i] = '='
		} else {
			bar[i] = ' '
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %s / %s %s\x1b[K", p.label, bar, 100*float64(p.done)/float64(p.total),
		formatSize(p.done), formatSize(p.total), rate)
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if !p.enabled {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}
