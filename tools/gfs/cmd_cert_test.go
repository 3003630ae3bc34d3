package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/control/tlsconfig"
)

func TestCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, stderr := runCmd(t, nil, "", "cert", "-dir", dir, "-nodes", "master,cs1,cs2,alice", "-hosts", "127.0.0.1,localhost")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "master.pem", "master-key.pem", "cs1.pem", "cs2-key.pem", "alice.pem"} {
		if !strings.Contains(out, filepath.Join(dir, f)) {
			t.Errorf("output does not list %s:\n%s", f, out)
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "cs1.pem"), filepath.Join(dir, "cs1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	if tlsconfig.RoleOf(cert) != tlsconfig.RoleChunkserver {
		t.Fatalf("cs1 role %q", tlsconfig.RoleOf(cert))
	}
	if _, err := tlsconfig.Server(tlsconfig.Files{Cert: filepath.Join(dir, "master.pem"), Key: filepath.Join(dir, "master-key.pem"), CA: filepath.Join(dir, "ca.pem")}); err != nil {
		t.Fatal(err)
	}

	// Running again for an existing node fails and writes nothing.
	before, _ := os.ReadDir(dir)
	code, _, stderr = runCmd(t, nil, "", "cert", "-dir", dir, "-nodes", "cs3,master")
	if code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("overwrite: exit %d: %s", code, stderr)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("refused run wrote files")
	}
}

func TestCertUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"cert"}, 2, "-dir is required"},
		{[]string{"cert", "-dir", t.TempDir(), "-nodes", "x:root"}, 1, "role"},
		{[]string{"cert", "-dir", t.TempDir(), "-nodes", ""}, 1, "no nodes"},
		{[]string{"cert", "-dir", t.TempDir(), "-hosts", " , "}, 1, "no host"},
		{[]string{"cert", "-dir", t.TempDir(), "extra"}, 2, "want 0 argument"},
	}
	for _, tc := range cases {
		code, _, stderr := runCmd(t, nil, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr, tc.code, tc.msg)
		}
	}
}
