package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control/tlsconfig"
)

// TestE2ETLS runs gfs master and chunkservers with certificates from gfs
// cert: client commands with the client certificate work, without one they
// are refused; TLS daemons do not warn, a plaintext one does.
func TestE2ETLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	gfs(t, bin, nil, 0, "cert", "-dir", certs, "-nodes", "master,cs0,cs1,cs2,client")
	tlsArgs := func(node string) []string {
		return []string{"-tls-cert", filepath.Join(certs, node+".pem"), "-tls-key", filepath.Join(certs, node+"-key.pem"), "-tls-ca", filepath.Join(certs, "ca.pem")}
	}
	mp, _ := startProc(t, bin, "", append(append([]string{"master", "-addr", "127.0.0.1:0", "-dir", filepath.Join(dir, "master"),
		"-chunk-size", "1MiB", "-replication", "3"}, timerArgs...), tlsArgs("master")...)...)
	master := waitMasterAddr(t, mp)
	var css []*proc
	for i := 0; i < 3; i++ {
		p, _ := startProc(t, bin, "", append([]string{"chunkserver", "-master", master, "-addr", "127.0.0.1:0",
			"-dir", filepath.Join(dir, fmt.Sprintf("cs%d", i)), "-heartbeat", "100ms"}, tlsArgs(fmt.Sprintf("cs%d", i))...)...)
		css = append(css, p)
	}
	defer func() {
		for _, p := range append(css, mp) {
			p.kill()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := tlsconfig.Client(tlsconfig.Files{Cert: filepath.Join(certs, "client.pem"), Key: filepath.Join(certs, "client-key.pem"), CA: filepath.Join(certs, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, master, client.Options{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitWritable(t, ctx, c)

	src := filepath.Join(dir, "src")
	want := writeRandomFile(t, src, 8, 3*e2eChunk+100)
	gfs(t, bin, nil, 0, append([]string{"put", "-master", master}, append(tlsArgs("client"), src, "/f")...)...)
	dst := filepath.Join(dir, "dst")
	gfs(t, bin, nil, 0, append([]string{"get", "-master", master}, append(tlsArgs("client"), "/f", dst)...)...)
	if fileSHA(t, dst) != want {
		t.Fatal("file read back over TLS differs")
	}
	// Without a certificate: refused.
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	var out, errOut bytes.Buffer
	code := run([]string{"ls", "-master", master, "/"}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	if code == 0 || lctx.Err() != nil {
		t.Fatalf("gfs ls without a certificate: exit %d, out %q", code, out.String())
	}
	// Half the flags: a clear error, no plaintext fallback.
	code = run([]string{"ls", "-master", master, "-tls-cert", filepath.Join(certs, "client.pem"), "/"}, IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	if code == 0 || !strings.Contains(errOut.String(), "must be given together") {
		t.Fatalf("gfs ls with -tls-cert only: exit %d, stderr %q", code, errOut.String())
	}
	for _, p := range append(css, mp) {
		if strings.Contains(p.stderrText(), "TLS NOT CONFIGURED") {
			t.Fatalf("a TLS daemon warned about missing TLS:\n%s", p.stderrText())
		}
	}

	// A plaintext master warns loudly at start.
	pp, _ := startProc(t, bin, "", "master", "-insecure", "-addr", "127.0.0.1:0", "-dir", filepath.Join(dir, "plain"))
	defer pp.kill()
	waitMasterAddr(t, pp)
	if !strings.Contains(pp.stderrText(), "TLS NOT CONFIGURED") {
		t.Fatalf("plaintext master did not warn:\n%s", pp.stderrText())
	}
	_ = os.Remove(dst)
}

// TestE2ELocalTLS runs gfs local -tls-dir: it creates the certificates,
// serves with TLS, and client commands need the client certificate.
func TestE2ELocalTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	p, line := startProc(t, bin, "ready", append([]string{"local", "-dir", filepath.Join(dir, "cluster"), "-chunkservers", "3",
		"-master-addr", "127.0.0.1:0", "-chunk-size", "1MiB", "-tls-dir", certs}, timerArgs...)...)
	defer p.kill()
	master := field(line, "master")
	if strings.Contains(p.stderrText(), "TLS NOT CONFIGURED") {
		t.Fatalf("gfs local -tls-dir warned about missing TLS:\n%s", p.stderrText())
	}
	client := []string{"-tls-cert", filepath.Join(certs, "client.pem"), "-tls-key", filepath.Join(certs, "client-key.pem"), "-tls-ca", filepath.Join(certs, "ca.pem")}
	gfs(t, bin, nil, 0, append(append([]string{"mkdir", "-master", master}, client...), "/d")...)
	out := gfs(t, bin, nil, 0, append(append([]string{"ls", "-master", master}, client...), "/")...)
	if !strings.Contains(out, " d/") {
		t.Fatalf("ls over TLS: %q", out)
	}
	gfs(t, bin, nil, 1, "ls", "-master", master, "/")
}
