package bench

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// counters are what a running phase reports progress with; workers add to
// them as they go.
type counters struct {
	bytes atomic.Int64
	ops   atomic.Int64
}

// progress prints one status line per phase on w (stderr): on a terminal it
// is rewritten in place twice a second, otherwise a line every few seconds;
// a final line with the phase's totals stays in both cases.
type progress struct {
	w      io.Writer // nil = silent
	tty    bool
	prefix string // before every label
}

// withPrefix returns a progress printing prefix before every label.
func (p *progress) withPrefix(prefix string) *progress {
	q := *p
	q.prefix = p.prefix + prefix
	return &q
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

// start reports label's progress from c until the returned stop is called;
// stop prints the final line and waits for the reporting goroutine.
func (p *progress) start(label string, c *counters) (stop func()) {
	if p == nil || p.w == nil {
		return func() {}
	}
	label = p.prefix + label
	begin := time.Now()
	line := func() string {
		el := time.Since(begin).Seconds()
		b, o := c.bytes.Load(), c.ops.Load()
		s := fmt.Sprintf("%-30s %6.1fs", label, el)
		if b > 0 {
			s += fmt.Sprintf(" %9.1f MiB %9.1f MiB/s", float64(b)/(1<<20), float64(b)/(1<<20)/el)
		}
		if o > 0 {
			s += fmt.Sprintf(" %9d ops %9.0f ops/s", o, float64(o)/el)
		}
		return s
	}
	every := 5 * time.Second
	if p.tty {
		every = 500 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if p.tty {
					fmt.Fprintf(p.w, "\r%s\x1b[K", line())
				} else {
					fmt.Fprintln(p.w, line())
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\x1b[K\n", line())
			} else {
				fmt.Fprintln(p.w, line())
			}
		})
	}
}

// note prints a one-off status line.
func (p *progress) note(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}
