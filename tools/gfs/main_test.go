package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// runCmd runs the gfs command in-process with the given stdin and
// environment and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, IO{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, 2, "usage: gfs COMMAND"},
		{[]string{"help"}, 0, "commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"put"}, 2, "want 2 argument(s), got 0"},
		{[]string{"put", "-h"}, 0, "usage: gfs put"},
		{[]string{"get", "a"}, 2, "want 2 argument(s)"},
		{[]string{"ls", "a", "b"}, 2, "want 0 to 1 arguments"},
		{[]string{"ls"}, 1, "no master: pass -master HOST:PORT or set GFS_MASTER"},
		{[]string{"cat", "-records"}, 2, "want 1 argument(s)"},
		{[]string{"ls", "-master", "nocolon"}, 1, "bad argument"},
		{[]string{"ls", "-master", "127.0.0.1:1"}, 1, "dial master 127.0.0.1:1"},
		{[]string{"master"}, 2, "-dir is required"},
		{[]string{"master", "-dir", "x", "-chunk-size", "12XB"}, 2, "bad size"},
		{[]string{"chunkserver", "-dir", "x"}, 2, "-master (or GFS_MASTER) and -dir are required"},
		{[]string{"chunkserver", "-master", "127.0.0.1:1", "-dir", "x", "-send-mode", "splice"}, 1, `-send-mode "splice"`},
		{[]string{"local"}, 2, "-dir is required"},
		{[]string{"local", "-dir", "x", "-chunk-size", "-1"}, 2, "negative"},
		{[]string{"local", "-dir", "x", "extra"}, 2, "want 0 argument(s)"},
		{[]string{"put", "-buffer", "0", "a", "b"}, 1, "-buffer 0"},
		{[]string{"put", "/does/not/exist", "/x"}, 1, "no such file or directory"},
	}
	for _, c := range cases {
		code, _, stderr := runCmd(t, nil, "", c.args...)
		if code != c.code || !strings.Contains(stderr, c.inStderr) {
			t.Errorf("gfs %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.inStderr)
		}
	}
}

func TestLocalBadDirLeavesNothing(t *testing.T) {
	// A file where the cluster directory should be: clear error, exit 1.
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, nil, "", "local", "-dir", f, "-chunkservers", "1")
	if code != 1 || !strings.Contains(stderr, "gfs local:") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if b, err := os.ReadFile(f); err != nil || string(b) != "x" {
		t.Fatalf("file changed: %q, %v", b, err)
	}
}

// binDir holds the gfs binary built for the end-to-end tests.
var binDir string

// gfsBinary builds the gfs command once per test run.
func gfsBinary(t *testing.T) string {
	t.Helper()
	if binDir == "" {
		d, err := os.MkdirTemp("", "gfs-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	bin := filepath.Join(binDir, "gfs")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
