package main

import (
	"net"
	"strings"
	"testing"
)

// TestMRCommandErrors: gfs mr refuses bad command lines (exit 2) and a
// coordinator that is not there (exit 1), each with a message naming what
// to fix.
func TestMRCommandErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mr"}, 2, "usage: gfs mr COMMAND"},
		{[]string{"mr", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"mr", "run", "-app", "wordcount", "-out", "/o"}, 2, "-in is required"},
		{[]string{"mr", "run", "-app", "wordcount", "-in", "/i"}, 2, "-out is required"},
		{[]string{"mr", "run", "-in", "/i", "-out", "/o"}, 2, "-app is required"},
		{[]string{"mr", "run", "-mapper", "cat", "-in", "/i", "-out", "/o"}, 2, "needs both -mapper and -reducer"},
		{[]string{"mr", "run", "-app", "nosuch", "-in", "/i", "-out", "/o", "-coordinator", dead}, 1, `unknown app "nosuch"`},
		{[]string{"mr", "run", "-app", "wordcount", "-in", "/i", "-out", "/o"}, 2, "no coordinator"},
		{[]string{"mr", "run", "-app", "wordcount", "-in", "/i", "-out", "/o", "-coordinator", dead}, 1, "no coordinator at " + dead},
		{[]string{"mr", "coordinator", "-master", "127.0.0.1:1", "-dir", t.TempDir()}, 1, "refusing to start without TLS credentials"},
		{[]string{"mr", "worker", "-insecure", "-master", "127.0.0.1:1", "-dir", t.TempDir()}, 2, "no coordinator"},
		{[]string{"mr", "worker", "-insecure", "-coordinator", dead, "-master", "127.0.0.1:1", "-dir", t.TempDir(), "-sort-buffer", "12"}, 2, "-sort-buffer"},
	} {
		code, _, stderr := runCmd(t, nil, "", c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("gfs %v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
}
