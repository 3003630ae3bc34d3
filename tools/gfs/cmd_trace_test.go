package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/dataplane/iotrace"
)

func TestTraceUsageErrors(t *testing.T) {
	cases := []struct {
		args     []string
		inStderr string
	}{
		{[]string{"trace"}, "pass exactly one of -pid and -addr"},
		{[]string{"trace", "-pid", "1", "-addr", "127.0.0.1:1"}, "pass exactly one of -pid and -addr"},
		{[]string{"trace", "-pid", "1", "-interval", "-1s"}, "must not be negative"},
		{[]string{"trace", "-pid", "1", "extra"}, "want 0 argument(s)"},
	}
	for _, c := range cases {
		code, _, stderr := runCmd(t, nil, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.inStderr) {
			t.Errorf("gfs %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.inStderr)
		}
	}
	if code, _, stderr := runCmd(t, nil, "", "trace", "-addr", "127.0.0.1:1"); code != 1 || !strings.Contains(stderr, "no process listens there") {
		t.Errorf("trace -addr with nothing listening: exit %d, stderr %q", code, stderr)
	}
}

// TestTraceRefusesWithoutPrivilege runs the binary as an unprivileged
// user (nobody via setpriv when the test runs as root): one line naming
// the privilege it needs, exit status 2.
func TestTraceRefusesWithoutPrivilege(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("tracing is linux/amd64 only")
	}
	bin := gfsBinary(t)
	args := []string{bin, "trace", "-pid", strconv.Itoa(os.Getpid()), "-duration", "1s"}
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("running as root and no setpriv to drop privileges")
		}
		// nobody must reach the binary.
		if err := os.Chmod(binDir, 0o755); err != nil {
			t.Fatal(err)
		}
		args = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("run %v: %v", args, err)
	}
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "gfs trace: needs root or CAP_BPF+CAP_PERFMON (") || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and one line naming the privilege", code, stdout.String(), stderr.String())
	}
	t.Logf("refusal: %s", lines[0])
}

// TestTraceCommandAgainstChunkserver runs gfs trace as a child process
// against this test process's chunkserver, found by its address, does a
// known workload, stops the trace with SIGTERM and checks the final JSON
// report's counts against the workload.
func TestTraceCommandAgainstChunkserver(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF+CAP_PERFMON) to load BPF programs")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("tracing is linux/amd64 only")
	}
	cl := startTestCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Create(ctx, "/traced", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, "/traced")
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(gfsBinary(t), "trace", "-addr", cl.ChunkserverAddrs()[0], "-json", "-interval", "1h")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Wait (bounded) for the programs to be attached.
	attached := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errPipe)
		var all []string
		for sc.Scan() {
			all = append(all, sc.Text())
			if strings.Contains(sc.Text(), "tracing pid") {
				attached <- sc.Text()
			}
		}
		attached <- "stderr closed: " + strings.Join(all, " | ")
	}()
	select {
	case l := <-attached:
		if want := "tracing pid " + strconv.Itoa(os.Getpid()); !strings.Contains(l, want) {
			t.Fatalf("gfs trace said %q, want %q", l, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gfs trace did not attach within 30 s")
	}

	const writes, size = 25, 32 << 10
	data := bytes.Repeat([]byte{0x5a}, size)
	for i := range writes {
		if _, err := f.WriteAtContext(ctx, data, int64(i)*size); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { <-attached; done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gfs trace after SIGTERM: %v (want exit 0)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gfs trace did not stop within 30 s of SIGTERM")
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var rep iotrace.ReportJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if rep.Kind != "total" || rep.PID != os.Getpid() {
		t.Fatalf("report kind %q pid %d, want total for %d", rep.Kind, rep.PID, os.Getpid())
	}
	pw := rep.Syscalls["pwrite64"]
	if pw.Count < writes || pw.Bytes < writes*size {
		t.Errorf("pwrite64 %+v; the workload wrote %d x %d bytes", pw, writes, size)
	}
	if bw := rep.Block["write"]; bw.Bytes < writes*size {
		t.Errorf("block write %+v; the workload wrote %d bytes with O_DIRECT", bw, writes*size)
	}
}
