package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// e2eChunk is the chunk size of the end-to-end clusters: small, so that a
// few MiB span several chunks.
const e2eChunk = 1 << 20

// timerArgs are short timers: dead chunkservers are noticed within a
// second, leases of dead primaries run out within two.
var timerArgs = []string{"-lease", "2s", "-heartbeat", "100ms", "-dead-after", "1s"}

// proc is a gfs child process.
type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     sync.Mutex // guards stderr while the process runs
	done   chan error
}

// startProc starts bin with args; when readyPrefix is not empty it waits for
// a stdout line starting with it and returns that line.
func startProc(t *testing.T, bin string, readyPrefix string, args ...string) (*proc, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	p := &proc{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &lockedWriter{mu: &p.mu, w: p.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { p.kill() })
	if readyPrefix == "" {
		return p, ""
	}
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("gfs %v exited before %q; stderr:\n%s", args, readyPrefix, p.stderrText())
			}
			if strings.HasPrefix(l, readyPrefix) {
				return p, l
			}
		case <-timeout:
			t.Fatalf("gfs %v: no %q line within 60s; stderr:\n%s", args, readyPrefix, p.stderrText())
		}
	}
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("gfs did not stop within 30s after SIGTERM; stderr:\n%s", p.stderrText())
		return nil
	}
}

// kill sends SIGKILL (if still running) and waits.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// field returns the value of key=value in a ready line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// gfs runs the binary to completion and returns its stdout; a non-zero exit
// fails the test unless wantCode says otherwise.
func gfs(t *testing.T, bin string, stdin io.Reader, wantCode int, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("gfs %v: %v", args, err)
	}
	if code != wantCode {
		t.Fatalf("gfs %v: exit %d, want %d; stderr:\n%s", args, code, wantCode, errOut.String())
	}
	return out.String()
}

func sha(b []byte) [32]byte { return sha256.Sum256(b) }

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

func writeRandomFile(t *testing.T, path string, seed uint64, n int) [32]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

func TestE2ELocalPutGetRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	// gfs local's default: TLS with certificates it makes in -dir/tls and
	// names on its ready line; the client commands below find them
	// through GFS_TLS_DIR alone (the README's one export). The restart
	// reuses them.
	var tlsDirs []string
	local := func() (*proc, string) {
		args := append([]string{"local", "-dir", filepath.Join(dir, "cluster"), "-chunkservers", "3",
			"-master-addr", "127.0.0.1:0", "-chunk-size", "1MiB", "-replication", "3"}, timerArgs...)
		p, line := startProc(t, bin, "ready", args...)
		m := field(line, "master")
		if m == "" {
			t.Fatalf("ready line without master=: %q", line)
		}
		td := field(line, "tls-dir")
		if td != filepath.Join(dir, "cluster", "tls") {
			t.Fatalf("ready line names tls-dir=%q, want %s: %q", td, filepath.Join(dir, "cluster", "tls"), line)
		}
		tlsDirs = append(tlsDirs, td)
		t.Setenv("GFS_TLS_DIR", td)
		return p, m
	}
	p, master := local()
	caBefore, err := os.ReadFile(filepath.Join(tlsDirs[0], "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}

	sizes := []int{0, 1, e2eChunk, 3*e2eChunk + 4321, 5*e2eChunk - 1}
	sums := map[string][32]byte{}
	for i, n := range sizes {
		src := filepath.Join(dir, fmt.Sprintf("in%d", i))
		remote := fmt.Sprintf("/data/f%d", i)
		sums[remote] = writeRandomFile(t, src, uint64(i), n)
		if out := gfs(t, bin, nil, 0, "put", "-master", master, "-p", src, remote); out != "" {
			t.Fatalf("put printed %q on a non-terminal", out)
		}
		dst := filepath.Join(dir, fmt.Sprintf("out%d", i))
		gfs(t, bin, nil, 0, "get", "-master", master, remote, dst)
		if fileSHA(t, dst) != sums[remote] {
			t.Fatalf("%s (%d bytes): get differs from put", remote, n)
		}
		if got := sha([]byte(gfs(t, bin, nil, 0, "cat", "-master", master, remote))); got != sums[remote] {
			t.Fatalf("%s: cat differs from put", remote)
		}
		// The master may list a chunk below its target for a while (a
		// chunkserver briefly declared dead under load is re-replicated), so
		// wait, bounded, until every chunk lists its 3 replicas.
		var out string
		deadline := time.Now().Add(60 * time.Second)
		for {
			var st struct {
				Length int64 `json:"length"`
				Chunks []struct {
					Index    *int64   `json:"index"`
					Handle   *uint64  `json:"handle"`
					Version  *uint64  `json:"version"`
					Replicas []string `json:"replicas"`
					Primary  *string  `json:"primary"`
				} `json:"chunks"`
			}
			out = gfs(t, bin, nil, 0, "stat", "-master", master, "-chunks", "-json", remote)
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("stat -chunks -json: %v\n%s", err, out)
			}
			if st.Length != int64(n) || len(st.Chunks) != (n+e2eChunk-1)/e2eChunk {
				t.Fatalf("stat %s: length %d, %d chunks; want %d bytes\n%s", remote, st.Length, len(st.Chunks), n, out)
			}
			full := true
			for j, c := range st.Chunks {
				if c.Index == nil || *c.Index != int64(j) || c.Handle == nil || c.Version == nil || c.Primary == nil {
					t.Fatalf("stat %s chunk %d misses fields:\n%s", remote, j, out)
				}
				full = full && len(c.Replicas) == 3
			}
			if full {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("stat %s: a chunk still lists fewer than 3 replicas after 60s:\n%s", remote, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The environment variable works as -master does.
	cmd := exec.Command(bin, "ls", "-json", "/data")
	cmd.Env = append(os.Environ(), "GFS_MASTER="+master)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ls with GFS_MASTER: %v", err)
	}
	var ls []client.FileInfo
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != len(sizes) {
		t.Fatalf("ls -json: %v, %d entries\n%s", err, len(ls), out)
	}
	var fsck struct {
		Healthy bool `json:"healthy"`
		Files   int  `json:"files"`
	}
	if err := json.Unmarshal([]byte(gfs(t, bin, nil, 0, "fsck", "-master", master, "-json", "-verify")), &fsck); err != nil || !fsck.Healthy || fsck.Files != len(sizes) {
		t.Fatalf("fsck: %+v, %v", fsck, err)
	}
	gfs(t, bin, nil, 1, "get", "-master", master, "/data/missing", filepath.Join(dir, "nope"))
	if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
		t.Fatalf("failed get left a local file: %v", err)
	}

	// Clean stop, restart on the same directory: the data is still there.
	if err := p.stop(t); err != nil {
		t.Fatalf("gfs local exit after SIGTERM: %v\n%s", err, p.stderrText())
	}
	_, master = local()
	if caAfter, err := os.ReadFile(filepath.Join(tlsDirs[1], "ca.pem")); err != nil || !bytes.Equal(caAfter, caBefore) {
		t.Fatalf("restart replaced the CA (%v)", err)
	}
	for remote, want := range sums {
		dst := filepath.Join(dir, "again")
		gfs(t, bin, nil, 0, "get", "-master", master, remote, dst)
		if fileSHA(t, dst) != want {
			t.Fatalf("%s differs after restart", remote)
		}
	}
}

func TestE2EConcurrentAppenders(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	args := append([]string{"local", "-insecure", "-dir", dir, "-chunkservers", "3", "-master-addr", "127.0.0.1:0", "-chunk-size", "1MiB"}, timerArgs...)
	_, line := startProc(t, bin, "ready", args...)
	master := field(line, "master")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const appenders, perAppender = 32, 25
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for a := 0; a < appenders; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Dial(ctx, master, client.Options{})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil && !isExists(err) {
				errs <- err
				return
			}
			for i := 0; i < perAppender; i++ {
				rec := fmt.Sprintf("appender %d record %d %s", a, i, strings.Repeat("x", (a*131+i*977)%(20<<10)))
				if _, err := c.RecordAppend(ctx, "/log", []byte(rec)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[rec] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// One more through the command: it prints the record's offset.
	if out := gfs(t, bin, strings.NewReader("from the command line"), 0, "append", "-master", master, "/log"); strings.TrimSpace(out) == "" {
		t.Fatal("append printed no offset")
	}
	acked["from the command line"] = true
	// Many lines at once, pipelined.
	var lines strings.Builder
	for i := range 500 {
		rec := fmt.Sprintf("line %d %s", i, strings.Repeat("y", i%300))
		lines.WriteString(rec + "\n")
		acked[rec] = true
	}
	if out := gfs(t, bin, strings.NewReader(lines.String()), 0, "append", "-master", master, "-lines", "-window", "8", "/log"); strings.TrimSpace(out) != "500" {
		t.Fatalf("append -lines printed %q, want 500", out)
	}

	out := gfs(t, bin, nil, 0, "cat", "-master", master, "-records", "/log")
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		seen[l]++
	}
	for rec := range acked {
		if seen[rec] != 1 {
			t.Fatalf("acknowledged record %.40q read back %d times", rec, seen[rec])
		}
	}
	if len(seen) != len(acked) {
		t.Fatalf("read back %d distinct records, %d acknowledged", len(seen), len(acked))
	}
}

func isExists(err error) bool { return err != nil && errorsIs(err, client.ErrExists) }

func TestE2EKillChunkserverDuringPut(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	bin := gfsBinary(t)
	dir := t.TempDir()
	mp, _ := startProc(t, bin, "", append([]string{"master", "-insecure", "-addr", "127.0.0.1:0", "-dir", filepath.Join(dir, "master"),
		"-chunk-size", "1MiB", "-replication", "3"}, timerArgs...)...)
	_ = mp
	master := waitMasterAddr(t, mp)
	var css []*proc
	for i := 0; i < 4; i++ {
		p, _ := startProc(t, bin, "", "chunkserver", "-insecure", "-master", master, "-addr", "127.0.0.1:0",
			"-dir", filepath.Join(dir, fmt.Sprintf("cs%d", i)), "-heartbeat", "100ms")
		css = append(css, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, master, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitWritable(t, ctx, c)

	// Feed the put through a pipe so the kill lands in the middle of it.
	const total = 12 * e2eChunk
	r := rand.New(rand.NewPCG(5, 5))
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	pr, pw := io.Pipe()
	put := exec.Command(bin, "put", "-master", master, "-buffer", "256KiB", "-", "/big")
	put.Stdin = pr
	var putErr bytes.Buffer
	put.Stderr = &putErr
	if err := put.Start(); err != nil {
		t.Fatal(err)
	}
	putDone := make(chan error, 1)
	go func() { putDone <- put.Wait() }()
	if _, err := pw.Write(data[:4*e2eChunk]); err != nil {
		t.Fatal(err)
	}
	// Wait until data reached the cluster, then kill -9 a chunkserver
	// holding the current chunk.
	var victim = -1
	for victim < 0 {
		// put writes under a hidden temporary name until it is complete.
		var tmp string
		if entries, err := c.List(ctx, "/"); err == nil {
			for _, e := range entries {
				if strings.HasPrefix(e.Name, ".big.put-") {
					tmp = e.Path
				}
			}
		}
		locs, err := c.Chunks(ctx, tmp)
		if err == nil && len(locs) >= 3 {
			addrs := chunkserverAddrs(t, css)
			for i, a := range addrs {
				for _, rep := range locs[len(locs)-1].Replicas {
					if rep == a {
						victim = i
					}
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatal("put made no progress")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := css[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(data[4*e2eChunk:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	select {
	case err := <-putDone:
		if err != nil {
			t.Fatalf("put after kill -9 of chunkserver %d: %v\n%s", victim, err, putErr.String())
		}
	case <-ctx.Done():
		t.Fatal("put did not finish")
	}
	entries, err := c.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if strings.HasPrefix(e.Name, ".big.put-") {
			t.Fatalf("temporary file %s left after the put", e.Name)
		}
	}
	if !slices.Contains(names, "big") {
		t.Fatalf("after put, / holds %v; want big", names)
	}
	out := filepath.Join(dir, "big.out")
	gfs(t, bin, nil, 0, "get", "-master", master, "/big", out)
	if fileSHA(t, out) != sha(data) {
		t.Fatal("file read back differs after kill -9 during put")
	}
}

// chunkserverAddrs reads each chunkserver's listen address from its log.
func chunkserverAddrs(t *testing.T, css []*proc) []string {
	var out []string
	for _, p := range css {
		out = append(out, logAddr(p.stderrText()))
	}
	return out
}

// logAddr finds addr=HOST:PORT in a "serving" log line.
func logAddr(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "serving") {
			if a := field(l, "addr"); a != "" {
				return a
			}
		}
	}
	return ""
}

func waitMasterAddr(t *testing.T, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if a := logAddr(p.stderrText()); a != "" {
			return a
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("master did not log its address; stderr:\n%s", p.stderrText())
	return ""
}

// waitWritable waits until a chunk with three replicas can be allocated.
func waitWritable(t *testing.T, ctx context.Context, c *client.Client) {
	t.Helper()
	for i := 0; ; i++ {
		p := fmt.Sprintf("/probe%d", i)
		if err := c.Create(ctx, p, client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f, _ := c.Open(ctx, p)
		_, err := f.WriteAtContext(ctx, []byte("x"), 0)
		if err == nil {
			locs, err := c.Chunks(ctx, p)
			if err == nil && len(locs) == 1 && len(locs[0].Replicas) == 3 {
				c.Delete(ctx, p, false)
				return
			}
		}
		c.Delete(ctx, p, false)
		if ctx.Err() != nil {
			t.Fatal("cluster never became writable")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
