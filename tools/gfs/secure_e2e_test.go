package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// gfsEnv runs the binary with env added to (and overriding) the test's
// environment, minus any GFS_TLS_* and GFS_DATA_TLS it has, and returns
// exit code, stdout and stderr.
func gfsEnv(t *testing.T, bin string, env []string, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GFS_TLS_") && !strings.HasPrefix(kv, "GFS_DATA_TLS=") && !strings.HasPrefix(kv, "GFS_MASTER=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("gfs %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// TestE2ESecureByDefault runs gfs local without flags: it serves TLS with
// capabilities, names its certificates on the ready line, client commands
// work with GFS_TLS_DIR alone, a client without it is told what to set,
// and the chunkservers' control service cannot be called in plaintext
// (nor by a client certificate), nor their data read without a
// capability.
func TestE2ESecureByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	p, line := startProc(t, bin, "ready", append([]string{"local", "-dir", filepath.Join(dir, "c"), "-chunkservers", "3",
		"-master-addr", "127.0.0.1:0", "-chunk-size", "1MiB"}, timerArgs...)...)
	defer p.kill()
	master, tlsDir := field(line, "master"), field(line, "tls-dir")
	if tlsDir == "" || field(line, "dir") == "" || field(line, "chunkservers") == "" {
		t.Fatalf("ready line %q lacks a field", line)
	}
	if strings.Contains(p.stderrText(), "TLS NOT CONFIGURED") {
		t.Fatalf("default gfs local warned about missing TLS:\n%s", p.stderrText())
	}
	env := []string{"GFS_MASTER=" + master, "GFS_TLS_DIR=" + tlsDir}
	data := bytes.Repeat([]byte("secure by default "), 200000) // ~3.4 chunks
	if code, _, stderr := gfsEnv(t, bin, env, data, "put", "-", "/f"); code != 0 {
		t.Fatalf("put with GFS_TLS_DIR: exit %d\n%s", code, stderr)
	}
	code, out, stderr := gfsEnv(t, bin, env, nil, "cat", "/f")
	if code != 0 || out != string(data) {
		t.Fatalf("cat with GFS_TLS_DIR: exit %d, %d bytes (want %d)\n%s", code, len(out), len(data), stderr)
	}
	// -tls-dir works as the variable does.
	if code, _, stderr := gfsEnv(t, bin, nil, nil, "ls", "-master", master, "-tls-dir", tlsDir, "/"); code != 0 {
		t.Fatalf("ls -tls-dir: exit %d\n%s", code, stderr)
	}

	// Defect 8: a client without credentials is told what to set.
	code, _, stderr = gfsEnv(t, bin, []string{"GFS_MASTER=" + master}, nil, "ls", "/")
	want := "master " + master + " requires TLS: set -tls-dir DIR or GFS_TLS_DIR (gfs local prints tls-dir= on its ready line)"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("ls without credentials: exit %d, stderr %q; want %q", code, stderr, want)
	}

	// The chunkservers' control service: no plaintext, no client role.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := strings.Split(field(line, "chunkservers"), ",")[0]
	cc, err := control.Dial(cs, control.DialOptions{CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlpb.NewChunkserverClient(cc).GrantLease(ctx, &controlpb.GrantLeaseRequest{Handle: 1, Version: 1})
	cc.Close()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext GrantLease on a default chunkserver: %v, want refused (Unavailable)", err)
	}
	ctls, err := tlsconfig.Client(tlsconfig.FilesInDir(tlsDir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err = control.Dial(cs, control.DialOptions{TLS: ctls, CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = controlpb.NewChunkserverClient(cc).SetVersion(ctx, &controlpb.SetVersionRequest{Handle: 1, Version: 2})
	cc.Close()
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("SetVersion with a client certificate: %v, want PermissionDenied", err)
	}
	// The data channel: capabilities are required.
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	if _, err := dc.Read(ctx, cs, 1, 1, 0, make([]byte, 8)); !errors.Is(err, dataclient.ErrDenied) {
		t.Fatalf("data read without a capability: %v, want ErrDenied", err)
	}
}

// TestE2ETLSClientPlaintextCluster: a client with certificates against a
// gfs local -insecure cluster is told the cluster does not use TLS.
func TestE2ETLSClientPlaintextCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	gfs(t, bin, nil, 0, "cert", "-dir", filepath.Join(dir, "certs"), "-nodes", "client")
	p, line := startProc(t, bin, "ready", append([]string{"local", "-insecure", "-dir", filepath.Join(dir, "c"), "-chunkservers", "1",
		"-master-addr", "127.0.0.1:0"}, timerArgs...)...)
	defer p.kill()
	if field(line, "tls-dir") != "" {
		t.Fatalf("gfs local -insecure names a tls-dir: %q", line)
	}
	master := field(line, "master")
	code, _, stderr := gfsEnv(t, bin, []string{"GFS_TLS_DIR=" + filepath.Join(dir, "certs")}, nil, "ls", "-master", master, "/")
	if code != 1 || !strings.Contains(stderr, "master "+master+" does not use TLS (it runs -insecure)") {
		t.Fatalf("TLS client of a plaintext cluster: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := gfsEnv(t, bin, nil, nil, "ls", "-master", master, "/"); code != 0 {
		t.Fatalf("plaintext client of gfs local -insecure: exit %d\n%s", code, stderr)
	}
}

// TestE2EDataTLS runs gfs local -data-tls: put and get work with the data
// channel encrypted; a client that does not encrypt is refused with a
// message naming -data-tls, and the chunkserver logs why.
func TestE2EDataTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	p, line := startProc(t, bin, "ready", append([]string{"local", "-data-tls", "-dir", filepath.Join(dir, "c"), "-chunkservers", "3",
		"-master-addr", "127.0.0.1:0", "-chunk-size", "1MiB"}, timerArgs...)...)
	defer p.kill()
	if field(line, "data-tls") != "true" {
		t.Fatalf("ready line without data-tls=true: %q", line)
	}
	env := []string{"GFS_MASTER=" + field(line, "master"), "GFS_TLS_DIR=" + field(line, "tls-dir")}
	src := filepath.Join(dir, "src")
	want := writeRandomFile(t, src, 15, 3*e2eChunk+777)
	if code, _, stderr := gfsEnv(t, bin, append(env, "GFS_DATA_TLS=1"), nil, "put", src, "/f"); code != 0 {
		t.Fatalf("put with data TLS: exit %d\n%s", code, stderr)
	}
	dst := filepath.Join(dir, "dst")
	if code, _, stderr := gfsEnv(t, bin, env, nil, "get", "-data-tls", "/f", dst); code != 0 {
		t.Fatalf("get -data-tls: exit %d\n%s", code, stderr)
	}
	if fileSHA(t, dst) != want {
		t.Fatal("file read back over data TLS differs")
	}
	// Without data TLS: refused, for reads and writes, with the fix named.
	for _, args := range [][]string{{"cat", "/f"}, {"put", src, "/g"}} {
		code, _, stderr := gfsEnv(t, bin, env, nil, args...)
		if code != 1 || !strings.Contains(stderr, "requires TLS on the data channel") || !strings.Contains(stderr, "set -data-tls or GFS_DATA_TLS=1") {
			t.Fatalf("gfs %v without data TLS: exit %d, stderr %q", args, code, stderr)
		}
	}
	if s := p.stderrText(); !strings.Contains(s, "refusing a plaintext data request") || !strings.Contains(s, "kernel TLS") {
		t.Fatalf("gfs local -data-tls did not log the refusal and the kernel TLS status:\n%s", s)
	}
}
