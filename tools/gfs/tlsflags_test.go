package main

import (
	"flag"
	"github.com/gfs-go/gfs/internal/tlsflag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/control/tlsconfig"
)

// TestDaemonsRefusePlaintext: gfs master and gfs chunkserver refuse to
// start without TLS credentials unless -insecure, say which flags to set,
// and create nothing.
func TestDaemonsRefusePlaintext(t *testing.T) {
	for _, args := range [][]string{
		{"master", "-addr", "127.0.0.1:0"},
		{"chunkserver", "-master", "127.0.0.1:1", "-addr", "127.0.0.1:0"},
	} {
		dir := filepath.Join(t.TempDir(), "d")
		code, _, stderr := runCmd(t, nil, "", append(args, "-dir", dir)...)
		if code != 1 || !strings.Contains(stderr, "refusing to start without TLS credentials") ||
			!strings.Contains(stderr, "-tls-dir") || !strings.Contains(stderr, "-insecure") {
			t.Errorf("gfs %v without TLS: exit %d, stderr %q", args, code, stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("gfs %v refused but created %s (%v)", args, dir, err)
		}
		// -insecure with TLS flags is a contradiction, not a choice.
		code, _, stderr = runCmd(t, nil, "", append(args, "-dir", dir, "-insecure", "-tls-dir", dir)...)
		if code != 1 || !strings.Contains(stderr, "-insecure with TLS flags") {
			t.Errorf("gfs %v -insecure -tls-dir: exit %d, stderr %q", args, code, stderr)
		}
	}
}

// TestTLSFlagsPrecedence: flags over the environment, a directory or the
// three files (not both), the node name from -tls-name, $GFS_TLS_NAME or
// the command's default, -insecure ignoring the environment.
func TestTLSFlagsPrecedence(t *testing.T) {
	env := func(m map[string]string) IO {
		return IO{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return m[k] }}
	}
	parse := func(node string, daemon bool, args ...string) *tlsflag.Flags {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var tf tlsflag.Flags
		tf.Register(fs, node, daemon)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &tf
	}
	cases := []struct {
		name    string
		node    string
		daemon  bool
		args    []string
		env     map[string]string
		want    tlsconfig.Files
		wantErr string
	}{
		{name: "client plaintext", node: "client"},
		{name: "client env dir", node: "client", env: map[string]string{"GFS_TLS_DIR": "/c"}, want: tlsconfig.FilesInDir("/c", "client")},
		{name: "flag dir beats env files", node: "client", args: []string{"-tls-dir", "/f"},
			env: map[string]string{"GFS_TLS_CERT": "a", "GFS_TLS_KEY": "b", "GFS_TLS_CA": "c"}, want: tlsconfig.FilesInDir("/f", "client")},
		{name: "env files", node: "client", env: map[string]string{"GFS_TLS_CERT": "a", "GFS_TLS_KEY": "b", "GFS_TLS_CA": "c"},
			want: tlsconfig.Files{Cert: "a", Key: "b", CA: "c"}},
		{name: "env both", node: "client", env: map[string]string{"GFS_TLS_DIR": "/c", "GFS_TLS_CERT": "a"}, wantErr: "not both"},
		{name: "flags both", node: "client", args: []string{"-tls-dir", "/c", "-tls-cert", "a"}, wantErr: "not both"},
		{name: "partial files", node: "client", args: []string{"-tls-cert", "a"}, wantErr: "must be given together"},
		{name: "daemon env dir", node: "chunkserver", daemon: true, env: map[string]string{"GFS_TLS_DIR": "/c"}, want: tlsconfig.FilesInDir("/c", "chunkserver")},
		{name: "daemon env name", node: "chunkserver", daemon: true, env: map[string]string{"GFS_TLS_DIR": "/c", "GFS_TLS_NAME": "cs1"}, want: tlsconfig.FilesInDir("/c", "cs1")},
		{name: "daemon flag name beats env", node: "chunkserver", daemon: true, args: []string{"-tls-name", "cs2"},
			env: map[string]string{"GFS_TLS_DIR": "/c", "GFS_TLS_NAME": "cs1"}, want: tlsconfig.FilesInDir("/c", "cs2")},
		{name: "daemon without TLS", node: "master", daemon: true, wantErr: "refusing to start"},
		{name: "daemon insecure ignores env", node: "master", daemon: true, args: []string{"-insecure"}, env: map[string]string{"GFS_TLS_DIR": "/c"}},
	}
	for _, c := range cases {
		got, err := parse(c.node, c.daemon, c.args...).Resolve(env(c.env).Getenv)
		switch {
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr == "" && got != c.want:
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
