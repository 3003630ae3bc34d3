package bench

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestProgressFinalLine(t *testing.T) {
	defer goleak.VerifyNone(t)
	var buf bytes.Buffer
	p := newProgress(&buf).withPrefix("[1/2] ")
	c := &counters{}
	stop := p.start("seqwrite", c)
	c.bytes.Add(3 << 20)
	c.ops.Add(3)
	stop()
	stop() // idempotent
	out := buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "[1/2] seqwrite") || !strings.Contains(out, "3.0 MiB") || !strings.Contains(out, " 3 ops") {
		t.Errorf("progress output %q, want one final line with the label and totals", out)
	}
	// A nil writer is silent and safe.
	newProgress(nil).start("x", c)()
	var nilp *progress
	nilp.note("nothing")
}
