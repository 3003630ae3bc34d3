package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/mapreduce"
)

// MapReduce on real processes: a coordinator and workers as child
// processes (gfs mr coordinator / gfs mr worker) beside a process cluster,
// jobs submitted with gfs mr run, outputs checked against references
// computed here.

// mrProcs is a coordinator and its workers.
type mrProcs struct {
	t       *testing.T
	addr    string
	coord   *daemon
	workers []*daemon
}

// startMR starts a coordinator and n workers, worker i beside chunkserver
// i mod N (-chunkserver), each with its own directory.
func startMR(t *testing.T, c *procCluster, n int, coordArgs, workerArgs []string) *mrProcs {
	t.Helper()
	m := &mrProcs{t: t, addr: freeAddr(t)}
	args := append([]string{"mr", "coordinator", "-insecure", "-addr", m.addr, "-master", c.masterAddr,
		"-dir", filepath.Join(c.dir, "coordinator"), "-heartbeat", "200ms", "-worker-timeout", "2s"}, coordArgs...)
	m.coord = newDaemon(t, "coordinator", c.dir, args...)
	m.coord.start()
	for i := range n {
		wargs := append([]string{"mr", "worker", "-insecure", "-coordinator", m.addr, "-master", c.masterAddr,
			"-dir", filepath.Join(c.dir, fmt.Sprintf("worker%d", i)), "-chunkserver", c.csAddr[i%len(c.csAddr)],
			"-slots", "2", "-sort-buffer", "1MiB"}, workerArgs...)
		w := newDaemon(t, fmt.Sprintf("worker%d", i), c.dir, wargs...)
		w.start()
		m.workers = append(m.workers, w)
	}
	m.waitWorkers(n)
	return m
}

// waitWorkers waits until the coordinator counts n registered workers.
func (m *mrProcs) waitWorkers(n int) {
	m.t.Helper()
	mc := m.client()
	defer mc.Close()
	if _, ok := eventually(30*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := mc.Status(ctx, "")
		return err == nil && m.workerCount(ctx, mc) >= n
	}); !ok {
		m.t.Fatalf("fewer than %d workers registered within 30 s", n)
	}
}

func (m *mrProcs) workerCount(ctx context.Context, mc *mapreduce.Client) int {
	n, err := mc.Workers(ctx)
	if err != nil {
		return -1
	}
	return n
}

func (m *mrProcs) client() *mapreduce.Client {
	m.t.Helper()
	mc, err := mapreduce.DialCoordinator(m.addr, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	return mc
}

// mrRun runs gfs mr run -json as a child process and returns its exit
// status, the parsed report and stderr.
type runReport struct {
	Job      string           `json:"job"`
	State    string           `json:"state"`
	Error    string           `json:"error"`
	Counters map[string]int64 `json:"counters"`
}

func (m *mrProcs) run(ctx context.Context, args ...string) (int, runReport, string) {
	m.t.Helper()
	gfsBinary(m.t)
	code, rep, errs := m.runNoFatal(ctx, args...)
	if code == -1 {
		m.t.Fatalf("gfs mr run: %s", errs)
	}
	return code, rep, errs
}

// startRun starts gfs mr run in the background; wait returns what run does.
func (m *mrProcs) startRun(ctx context.Context, args ...string) func() (int, runReport, string) {
	type result struct {
		code int
		rep  runReport
		errs string
	}
	ch := make(chan result, 1)
	go func() {
		code, rep, errs := m.runNoFatal(ctx, args...)
		ch <- result{code, rep, errs}
	}()
	return func() (int, runReport, string) {
		r := <-ch
		return r.code, r.rep, r.errs
	}
}

func (m *mrProcs) runNoFatal(ctx context.Context, args ...string) (int, runReport, string) {
	cmd := exec.CommandContext(ctx, binPath, append([]string{"mr", "run", "-coordinator", m.addr, "-json", "-q"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return -1, runReport{}, err.Error()
	}
	var rep runReport
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			return -1, rep, fmt.Sprintf("-json printed %q: %v", stdout.String(), err)
		}
	}
	return code, rep, stderr.String()
}

// waitJob polls the coordinator until cond holds for the (only or named)
// job's status.
func (m *mrProcs) waitJob(job string, bound time.Duration, cond func(mapreduce.JobStatus) bool) mapreduce.JobStatus {
	m.t.Helper()
	mc := m.client()
	defer mc.Close()
	var last mapreduce.JobStatus
	if _, ok := eventually(bound, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sts, err := mc.Status(ctx, job)
		if err != nil || len(sts) == 0 {
			return false // not submitted yet
		}
		last = sts[len(sts)-1]
		return cond(last)
	}); !ok {
		m.t.Fatalf("job %s: condition not reached within %v; last status %+v", job, bound, last)
	}
	return last
}

// putFile writes data to a new GFS file.
func putFile(t *testing.T, cl *client.Client, p string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.Create(ctx, p, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	f, err := cl.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAtContext(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
}

// outputLines reads OUT/part-r-00000... in order and checks _SUCCESS and
// that nothing else is visible in OUT.
func outputLines(t *testing.T, cl *client.Client, out string, reduces int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	infos, err := cl.List(ctx, out)
	if err != nil {
		t.Fatalf("list %s: %v", out, err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name)
	}
	want := []string{"_SUCCESS"}
	for p := range reduces {
		want = append(want, fmt.Sprintf("part-r-%05d", p))
	}
	sort.Strings(names)
	if !slices.Equal(names, want) {
		t.Fatalf("%s holds %v, want %v", out, names, want)
	}
	var lines []string
	for p := range reduces {
		b, err := readAll(ctx, cl, fmt.Sprintf("%s/part-r-%05d", out, p))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// textInput makes n lines of words (some non-ASCII) with digits and
// punctuation between them, so that lines cross chunk boundaries.
func textInput(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	vocab := []string{"alpha", "beta", "gamma", "delta", "Ünïcode", "naïve", "Zeta", "x", "epsilon", "日本語"}
	var b bytes.Buffer
	for range n {
		for j := rng.IntN(14); j > 0; j-- {
			b.WriteString(vocab[rng.IntN(len(vocab))])
			if rng.IntN(50) == 0 {
				fmt.Fprintf(&b, "%d", rng.IntN(1000))
			}
			b.WriteString([]string{" ", ", ", "--", "\t", "42"}[rng.IntN(5)])
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func isNotLetter(r rune) bool { return !unicode.IsLetter(r) }

// wordCountRef is the sequential reference: "word\tcount" lines.
func wordCountRef(inputs ...[]byte) map[string]string {
	counts := map[string]int{}
	for _, in := range inputs {
		for _, w := range strings.FieldsFunc(string(in), isNotLetter) {
			counts[w]++
		}
	}
	out := map[string]string{}
	for w, n := range counts {
		out[w] = strconv.Itoa(n)
	}
	return out
}

// linesToMap parses key<TAB>value lines, failing on a key seen twice and
// on keys out of order within a part (checked by the caller per part).
func linesToMap(t *testing.T, lines []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "\t")
		if _, dup := m[k]; dup {
			t.Fatalf("key %q appears twice in the output", k)
		}
		m[k] = v
	}
	return m
}

func compareMaps(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	bad := 0
	for k, v := range want {
		if got[k] != v {
			if bad++; bad <= 5 {
				t.Errorf("%s: %q = %q, want %q", what, k, got[k], v)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 5 {
				t.Errorf("%s: unexpected key %q", what, k)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d differences (%d keys, want %d)", what, bad, len(got), len(want))
	}
}

// sortInput makes n 100-byte records (99 printable bytes and "\n"), keys
// the first 10 bytes, with duplicate keys.
func sortInput(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 11))
	b := make([]byte, 0, n*100)
	for i := range n {
		line := make([]byte, 99)
		for j := range line {
			line[j] = byte(' ' + 1 + rng.IntN(94))
		}
		if i%50 == 1 {
			copy(line[:10], b[len(b)-100:len(b)-90]) // a duplicate key
		}
		b = append(append(b, line...), '\n')
	}
	return b
}

// TestMapReduceJobsOnProcesses (scenario 20): a coordinator and 3 workers
// as processes; wordcount, index and sort over inputs of several chunks
// whose lines cross chunk boundaries (64 KiB chunks), wordcount and index
// at the same time; outputs equal the sequential references, every
// partition once, _SUCCESS, nothing else in OUT; maps mostly data-local;
// bad submissions refused with clear errors and nothing left behind.
func TestMapReduceJobsOnProcesses(t *testing.T) {
	skipShort(t)
	small := []string{"-chunk-size", "65536"}
	c := startCluster(t, clusterOptions{masterArgs: small, csArgs: small})
	cl := c.dial(t)
	m := startMR(t, c, 3, nil, nil)
	a, b := textInput(1, 12000), textInput(2, 3000)
	putFile(t, cl, "/in/text/a.txt", a)
	putFile(t, cl, "/in/text/sub/b.txt", b)
	putFile(t, cl, "/in/text/_hidden", []byte("never counted\n"))
	srt := sortInput(3, 8000)
	putFile(t, cl, "/in/sort/records", srt)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Two jobs at once.
	waitWC := m.startRun(ctx, "-app", "wordcount", "-in", "/in/text", "-out", "/out/wc", "-reduces", "3")
	waitIdx := m.startRun(ctx, "-app", "index", "-in", "/in/text/a.txt", "-in", "/in/text/sub", "-out", "/out/idx", "-reduces", "2")
	code, rep, errs := waitWC()
	if code != 0 || rep.State != "succeeded" {
		t.Fatalf("wordcount: exit %d, %+v, stderr %s", code, rep, errs)
	}
	compareMaps(t, "wordcount", linesToMap(t, outputLines(t, cl, "/out/wc", 3)), wordCountRef(a, b))
	maps := rep.Counters["map_tasks"]
	local := rep.Counters["data_local_maps"]
	if maps < int64(len(a)/65536) || rep.Counters["input_bytes"] != int64(len(a)+len(b)) {
		t.Errorf("wordcount counters: %v", rep.Counters)
	}
	t.Logf("wordcount: %d maps, %d data-local, counters %v", maps, local, rep.Counters)
	if local*10 < maps*9 {
		t.Errorf("only %d of %d maps data-local with a worker beside every chunkserver", local, maps)
	}

	code, rep, errs = waitIdx()
	if code != 0 {
		t.Fatalf("index: exit %d, %+v, stderr %s", code, rep, errs)
	}
	idxRef := map[string]string{}
	for w := range wordCountRef(a) {
		idxRef[w] = "1 /in/text/a.txt"
	}
	for w := range wordCountRef(b) {
		if _, ok := idxRef[w]; ok {
			idxRef[w] = "2 /in/text/a.txt,/in/text/sub/b.txt"
		} else {
			idxRef[w] = "1 /in/text/sub/b.txt"
		}
	}
	compareMaps(t, "index", linesToMap(t, outputLines(t, cl, "/out/idx", 2)), idxRef)

	code, rep, errs = m.run(ctx, "-app", "sort", "-in", "/in/sort", "-out", "/out/sort", "-reduces", "4")
	if code != 0 {
		t.Fatalf("sort: exit %d, %+v, stderr %s", code, rep, errs)
	}
	got := outputLines(t, cl, "/out/sort", 4)
	want := strings.Split(strings.TrimSuffix(string(srt), "\n"), "\n")
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("sort output: %d lines, want %d; globally ordered: %v", len(got), len(want), slices.IsSorted(got))
	}

	// Bad submissions: each a clear error, exit 1, nothing in OUT.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-app", "wordcount", "-in", "/nope", "-out", "/out/bad1"}, "not found"},
		{[]string{"-app", "wordcount", "-in", "/in/text", "-out", "/out/wc"}, "exists"},
		{[]string{"-app", "nosuchapp", "-in", "/in/text", "-out", "/out/bad2"}, "unknown app"},
		{[]string{"-app", "grep", "-in", "/in/text", "-out", "/out/bad3"}, "pattern"},
	} {
		code, _, errs := m.run(ctx, bad.args...)
		if code != 1 || !strings.Contains(errs, bad.want) {
			t.Errorf("gfs mr run %v: exit %d, stderr %q (want %q)", bad.args, code, errs, bad.want)
		}
	}
	for _, p := range []string{"/out/bad1", "/out/bad2", "/out/bad3"} {
		if _, err := cl.Stat(ctx, p); err == nil {
			t.Errorf("refused job left %s", p)
		}
	}
	// A streaming mapper that fails: the job fails naming the task and its
	// input, and its output directory is gone.
	code, rep, errs = m.run(ctx, "-mapper", "exit 3", "-reducer", "cat", "-in", "/in/text/sub", "-out", "/out/failing")
	if code != 1 || rep.State != "failed" || !strings.Contains(rep.Error, "/in/text/sub/b.txt") {
		t.Errorf("failing mapper: exit %d, report %+v, stderr %s", code, rep, errs)
	}
	if _, err := cl.Stat(ctx, "/out/failing"); err == nil {
		t.Errorf("failed job left its output directory")
	}
}

// mrCluster is the setup of the fault scenarios below: 3 chunkservers with
// 256 KiB chunks, a coordinator and 3 one-slot workers, and a text input
// of about 40 maps.
func mrCluster(t *testing.T, coordArgs, workerArgs []string) (*procCluster, *client.Client, *mrProcs, []byte) {
	t.Helper()
	small := []string{"-chunk-size", "262144"}
	c := startCluster(t, clusterOptions{masterArgs: small, csArgs: small})
	cl := c.dial(t)
	m := startMR(t, c, 3, coordArgs, append([]string{"-slots", "1"}, workerArgs...))
	in := textInput(9, 200000)
	putFile(t, cl, "/in/big.txt", in)
	return c, cl, m, in
}

// slowMapper makes every map attempt take a while (a shell loop over its
// lines), so the scenarios below can act in the middle of the map phase.
const slowMapper = `while IFS= read -r l; do echo "$l"; done | LC_ALL=C tr -cs '[:alpha:]' '\n' | grep . | sed 's/$/\t1/'`

// asciiWords is a streaming mapper emitting (word, 1) for runs of ASCII
// letters; asciiWordCount is its reference.
const asciiWords = `LC_ALL=C tr -cs '[:alpha:]' '\n' | grep . | sed 's/$/\t1/'`

func asciiWordCount(in []byte) map[string]string {
	want := map[string]string{}
	for _, w := range strings.FieldsFunc(string(in), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) {
		n, _ := strconv.Atoi(want[w])
		want[w] = strconv.Itoa(n + 1)
	}
	return want
}

// hasChild reports whether process pid has a child process.
func hasChild(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return true
		}
	}
	return false
}

const sumReducer = `awk -F'\t' '{c[$1]+=$2} END {for (k in c) print k "\t" c[k]}'`

// TestMapReduceWorkerKilled (scenario 21): kill -9 one worker in the middle
// of the map phase and another in the middle of the reduce phase; the job
// still gives the reference result, with tasks re-executed.
func TestMapReduceWorkerKilled(t *testing.T) {
	skipShort(t)
	_, cl, m, in := mrCluster(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wait := m.startRun(ctx, "-app", "wordcount", "-in", "/in/big.txt", "-out", "/out/wc", "-reduces", "3")
	st := m.waitJob("", 60*time.Second, func(s mapreduce.JobStatus) bool { return s.MapsDone >= s.Maps/3 })
	if st.MapsDone == st.Maps {
		t.Logf("map phase already over at the first look; the kill lands in the reduce phase")
	}
	m.workers[0].kill()
	t.Logf("killed worker0 at maps %d/%d", st.MapsDone, st.Maps)
	code, rep, errs := wait()
	if code != 0 {
		t.Fatalf("wordcount after a worker died: exit %d %+v %s", code, rep, errs)
	}
	compareMaps(t, "wordcount", linesToMap(t, outputLines(t, cl, "/out/wc", 3)), wordCountRef(in))
	if rep.Counters["reexecuted_tasks"] < 1 && st.MapsDone > 0 {
		t.Logf("no task re-executed (worker0 may not have finished a map before it died): %v", rep.Counters)
	}
	t.Logf("counters after a mid-map kill: %v", rep.Counters)

	// Mid-reduce: a streaming reducer slow enough to be caught running.
	m.workers[0].start()
	m.waitWorkers(3)
	wait = m.startRun(ctx, "-mapper", `LC_ALL=C tr -cs '[:alpha:]' '\n' | grep . | sed 's/$/\t1/'`,
		"-reducer", `while IFS= read -r l; do echo "$l"; done | `+sumReducer, "-in", "/in/big.txt", "-out", "/out/wc2", "-reduces", "3")
	st = m.waitJob("job-0002", 90*time.Second, func(s mapreduce.JobStatus) bool {
		return s.State != "running" || (s.MapsDone == s.Maps && s.ReducesDone < s.Reduces)
	})
	if st.State != "running" {
		t.Fatalf("job ended before its reduce phase could be caught: %+v", st)
	}
	m.workers[1].kill()
	code, rep, errs = wait()
	if code != 0 {
		t.Fatalf("streaming wordcount after a worker died mid-reduce: exit %d %+v %s", code, rep, errs)
	}
	got := linesToMap(t, outputLines(t, cl, "/out/wc2", 3))
	want := map[string]string{}
	for _, w := range strings.FieldsFunc(string(in), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) {
		n, _ := strconv.Atoi(want[w])
		want[w] = strconv.Itoa(n + 1)
	}
	compareMaps(t, "streaming wordcount", got, want)
	t.Logf("counters after a mid-reduce kill: %v", rep.Counters)
}

// TestMapReduceStalledWorkerOvertaken (scenario 22): SIGSTOP one worker
// while it runs a map attempt; with a long worker timeout it is not
// declared dead, so the job can only finish because a backup copy of its
// straggling attempt runs elsewhere and commits first.
func TestMapReduceStalledWorkerOvertaken(t *testing.T) {
	skipShort(t)
	_, cl, m, in := mrCluster(t, []string{"-worker-timeout", "10m", "-backup-after", "500ms"}, []string{"-shuffle-timeout", "2s"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Each map attempt's streaming child sleeps first, so an attempt is
	// caught running: the worker is stopped while its child process exists.
	wait := m.startRun(ctx, "-mapper", "sleep 1; "+asciiWords, "-reducer", sumReducer, "-in", "/in/big.txt", "-out", "/out/wc", "-reduces", "2")
	m.waitJob("job-0001", 60*time.Second, func(s mapreduce.JobStatus) bool { return s.MapsDone >= 1 })
	w := m.workers[2]
	w.mu.Lock()
	pid := w.cmd.Process.Pid
	w.mu.Unlock()
	if _, ok := eventually(30*time.Second, func() bool { return hasChild(pid) }); !ok {
		t.Fatal("worker2 never ran a map attempt")
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	code, rep, errs := wait()
	if code != 0 {
		t.Fatalf("job with a stalled worker: exit %d %+v %s", code, rep, errs)
	}
	compareMaps(t, "wordcount", linesToMap(t, outputLines(t, cl, "/out/wc", 2)), asciiWordCount(in))
	if rep.Counters["backup_tasks"] < 1 {
		t.Errorf("job finished without a backup task: %v", rep.Counters)
	}
	t.Logf("counters with a stalled worker: %v", rep.Counters)
}

// TestMapReduceCoordinatorRestart (scenario 23): kill -9 the coordinator
// in the middle of a job and start it again on the same -dir; it resumes
// the job from its journal and the job finishes with the right output; gfs
// mr status reports it succeeded.
func TestMapReduceCoordinatorRestart(t *testing.T) {
	skipShort(t)
	_, cl, m, in := mrCluster(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wait := m.startRun(ctx, "-mapper", slowMapper, "-reducer", sumReducer, "-in", "/in/big.txt", "-out", "/out/wc", "-reduces", "3")
	st := m.waitJob("", 60*time.Second, func(s mapreduce.JobStatus) bool { return s.MapsDone >= 2 })
	m.coord.kill()
	t.Logf("killed the coordinator at maps %d/%d", st.MapsDone, st.Maps)
	m.coord.start()
	code, rep, errs := wait()
	if code != 0 {
		t.Fatalf("job across a coordinator restart: exit %d %+v %s", code, rep, errs)
	}
	got := linesToMap(t, outputLines(t, cl, "/out/wc", 3))
	want := map[string]string{}
	for _, w := range strings.FieldsFunc(string(in), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') }) {
		n, _ := strconv.Atoi(want[w])
		want[w] = strconv.Itoa(n + 1)
	}
	compareMaps(t, "wordcount across a restart", got, want)
	out, err := exec.CommandContext(ctx, binPath, "mr", "status", "-coordinator", m.addr, st.ID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "succeeded") {
		t.Errorf("gfs mr status %s: %v\n%s", st.ID, err, out)
	}
}
