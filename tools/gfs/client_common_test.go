package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, enabled: true, label: "put /f", total: 4 << 20}
	p.add(1 << 20)
	p.finish()
	out := buf.String()
	if !strings.Contains(out, "put /f [=======") || !strings.Contains(out, " 25% 1 MiB / 4 MiB") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("progress output %q", out)
	}

	buf.Reset()
	p = &progress{w: &buf, enabled: true, label: "get /f", total: -1}
	p.add(1536)
	p.finish()
	if out := buf.String(); !strings.Contains(out, "get /f 1.5 KiB") {
		t.Fatalf("progress of unknown total %q", out)
	}

	// Not a terminal: nothing is drawn.
	buf.Reset()
	p = newProgress(IO{Stdout: &buf, Stderr: &buf}, "put /f", 10)
	p.add(5)
	p.finish()
	if buf.Len() != 0 {
		t.Fatalf("progress drawn on a non-terminal: %q", buf.String())
	}
}
