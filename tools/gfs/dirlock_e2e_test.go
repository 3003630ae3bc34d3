package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitStderr waits until p's stderr contains s (or p exits, or 60 s pass).
func waitStderr(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.stderrText(), s) {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("exited (%v) before logging %q; stderr:\n%s", err, s, p.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 60 s; stderr:\n%s", s, p.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refused runs a daemon that must refuse to start on a locked directory:
// it exits non-zero within 30 s, its error names dir and the holder's pid.
func refused(t *testing.T, bin, dir string, holderPID int, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("gfs %v started on a directory in use and exited 0; stderr:\n%s", args, errOut.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("gfs %v kept running on a directory in use; stderr:\n%s", args, errOut.String())
	}
	msg := errOut.String()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, "in use") || !strings.Contains(msg, fmt.Sprintf("process %d", holderPID)) {
		t.Fatalf("gfs %v: error does not name %s and holder %d:\n%s", args, dir, holderPID, msg)
	}
}

// TestE2EDaemonsRefuseLockedDir (issue 15, defect 3): a second master, a
// second chunkserver and a second gfs local on a directory a running one
// holds exit with an error naming the directory and the holder's pid; the
// first keeps serving namespace changes; once it stopped, a new one starts
// on the directory and sees what the first acknowledged.
func TestE2EDaemonsRefuseLockedDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := gfsBinary(t)
	root := t.TempDir()
	mdir := filepath.Join(root, "master")
	m1, _ := startProc(t, bin, "", append([]string{"master", "-insecure", "-addr", "127.0.0.1:0", "-dir", mdir}, timerArgs...)...)
	maddr := waitMasterAddr(t, m1)
	gfs(t, bin, nil, 0, "mkdir", "-master", maddr, "/before")
	refused(t, bin, mdir, m1.cmd.Process.Pid, "master", "-insecure", "-addr", "127.0.0.1:0", "-dir", mdir)
	gfs(t, bin, nil, 0, "mkdir", "-master", maddr, "/after")

	csdir := filepath.Join(root, "cs")
	cs1, _ := startProc(t, bin, "", "chunkserver", "-insecure", "-master", maddr, "-addr", "127.0.0.1:0", "-dir", csdir)
	waitStderr(t, cs1, "registered with master")
	refused(t, bin, csdir, cs1.cmd.Process.Pid, "chunkserver", "-insecure", "-master", maddr, "-addr", "127.0.0.1:0", "-dir", csdir)
	if err := cs1.stop(t); err != nil {
		t.Fatalf("chunkserver stop: %v", err)
	}
	cs2, _ := startProc(t, bin, "", "chunkserver", "-insecure", "-master", maddr, "-addr", "127.0.0.1:0", "-dir", csdir)
	waitStderr(t, cs2, "registered with master")
	if err := cs2.stop(t); err != nil {
		t.Fatalf("chunkserver stop: %v", err)
	}

	if err := m1.stop(t); err != nil {
		t.Fatalf("master stop: %v", err)
	}
	m2, _ := startProc(t, bin, "", "master", "-insecure", "-addr", "127.0.0.1:0", "-dir", mdir)
	maddr = waitMasterAddr(t, m2)
	out := gfs(t, bin, nil, 0, "ls", "-master", maddr, "/")
	if !strings.Contains(out, "before") || !strings.Contains(out, "after") {
		t.Fatalf("the restarted master lost acknowledged directories: ls / = %q", out)
	}

	ldir := filepath.Join(root, "local")
	l1, _ := startProc(t, bin, "ready", "local", "-dir", ldir, "-chunkservers", "1")
	refused(t, bin, ldir, l1.cmd.Process.Pid, "local", "-dir", ldir, "-chunkservers", "1")
	if err := l1.stop(t); err != nil {
		t.Fatalf("gfs local stop: %v", err)
	}
	l2, _ := startProc(t, bin, "ready", "local", "-dir", ldir, "-chunkservers", "1")
	if err := l2.stop(t); err != nil {
		t.Fatalf("gfs local stop: %v", err)
	}
}
