package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// memOptions runs every workload quickly against m, without baselines.
func memOptions(t *testing.T, m *memFS) Options {
	return Options{
		Clients: 3, SizeBytes: 3 << 20, RecordBytes: 100, Duration: 50 * time.Millisecond, Runs: 1,
		NoBaselines: true, Dir: t.TempDir(), Seed: 5,
		Connect: m.connect,
		StartCluster: func(ctx context.Context, o ClusterOptions) (Target, error) {
			return Target{MasterAddr: "mem", Close: func() error { return nil }}, nil
		},
	}
}

func TestRunAllWorkloadsInMemory(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := newMemFS()
	opts := memOptions(t, m)
	opts.Runs = 2
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(Workloads) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(Workloads))
	}
	for _, r := range rep.Results {
		if r.Ops == 0 || r.Runs != 2 || r.Seconds <= 0 || r.Baseline == "" {
			t.Errorf("%s: %+v", r.Workload, r)
		}
		switch r.Workload {
		case WorkloadSeqWrite:
			if r.Bytes != 3*3<<20 || r.Ops != 9 {
				t.Errorf("seqwrite moved %d bytes in %d ops, want %d in 9", r.Bytes, r.Ops, 3*3<<20)
			}
		case WorkloadSeqRead:
			if r.VerifiedBytes != 3*3<<20 {
				t.Errorf("seqread verified %d bytes, want %d", r.VerifiedBytes, 3*3<<20)
			}
		case WorkloadRandRead, WorkloadAppend:
			if r.VerifiedBytes != r.Bytes {
				t.Errorf("%s verified %d of %d bytes", r.Workload, r.VerifiedBytes, r.Bytes)
			}
		}
	}
	// Everything the run created is gone.
	if names, _ := (memClient{m}).List(context.Background(), "/"); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
}

func TestRunFailsOnCorruptedRead(t *testing.T) {
	for _, w := range []string{WorkloadSeqRead, WorkloadRandRead} {
		t.Run(w, func(t *testing.T) {
			m := newMemFS()
			m.onRead = func(path string, p []byte, off int64) {
				// One flipped bit somewhere in the second MiB of every file.
				if i := (1 << 20) + 12345 - off; i >= 0 && i < int64(len(p)) {
					p[i] ^= 0x10
				}
			}
			opts := memOptions(t, m)
			opts.Workloads = []string{w}
			opts.Duration = time.Second // randread: enough reads to cross the bad byte
			_, err := Run(context.Background(), opts)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, ErrVerify) {
				t.Fatalf("Run = %v, want a verification error", err)
			}
			if ve.Offset != (1<<20)+12345 {
				t.Errorf("reported offset %d, want %d", ve.Offset, (1<<20)+12345)
			}
		})
	}
}

func TestRunFailsOnLostAppend(t *testing.T) {
	m := newMemFS()
	m.dropRecord = 3
	opts := memOptions(t, m)
	opts.Workloads = []string{WorkloadAppend}
	_, err := Run(context.Background(), opts)
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Run = %v, want a verification error about a missing record", err)
	}
}

func TestRunCountsDuplicateAppends(t *testing.T) {
	m := newMemFS()
	opts := memOptions(t, m)
	opts.Workloads = []string{WorkloadAppend}
	connect := opts.Connect
	opts.Connect = func(ctx context.Context, addr string) (FS, error) {
		fs, err := connect(ctx, addr)
		return dupFS{fs}, err
	}
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Results[0].Note, "duplicate") {
		t.Errorf("note = %q, want duplicates reported", rep.Results[0].Note)
	}
}

// dupFS appends every record twice, as a client retry would.
type dupFS struct{ FS }

func (d dupFS) NewRecordWriter(ctx context.Context, p string, window int) (RecordWriter, error) {
	return &syncRecordWriter{ctx: ctx, fs: d, path: p}, nil
}

func (d dupFS) RecordAppend(ctx context.Context, p string, rec []byte) error {
	if err := d.FS.RecordAppend(ctx, p, rec); err != nil {
		return err
	}
	return d.FS.RecordAppend(ctx, p, rec)
}

func TestBadOptions(t *testing.T) {
	m := newMemFS()
	for name, mutate := range map[string]func(*Options){
		"clients":    func(o *Options) { o.Clients = -1 },
		"size":       func(o *Options) { o.SizeBytes = 1000 },
		"record":     func(o *Options) { o.RecordBytes = 8 },
		"runs":       func(o *Options) { o.Runs = -2 },
		"workload":   func(o *Options) { o.Workloads = []string{"seqwrite", "nope"} },
		"dir":        func(o *Options) { o.Dir = "/nonexistent/dir" },
		"no connect": func(o *Options) { o.Connect = nil },
		"no cluster": func(o *Options) { o.StartCluster = nil },
		"negative":   func(o *Options) { o.Duration = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			o := memOptions(t, m)
			mutate(&o)
			if _, err := Run(context.Background(), o); !errors.Is(err, ErrBadOptions) {
				t.Errorf("Run = %v, want ErrBadOptions", err)
			}
		})
	}
	if len(m.entries) != 1 {
		t.Errorf("bad options changed the file system: %v", m.entries)
	}
}

func TestRunWritesCPUProfiles(t *testing.T) {
	m := newMemFS()
	opts := memOptions(t, m)
	opts.Workloads = []string{WorkloadSeqWrite, WorkloadSeqRead}
	opts.CPUProfile = filepath.Join(t.TempDir(), "cpu")
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, w := range opts.Workloads {
		if info, err := os.Stat(opts.CPUProfile + "." + w); err != nil || info.Size() == 0 {
			t.Errorf("profile of %s: %v", w, err)
		}
	}
	if _, err := os.Stat(opts.CPUProfile + "." + WorkloadAppend); err == nil {
		t.Error("profile written for a workload that did not run")
	}
}

// TestFailedRunAgainstExistingClusterCleansUp: with -master, a failed run
// deletes what it created.
func TestFailedRunAgainstExistingClusterCleansUp(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := newMemFS()
	m.dropRecord = 1
	opts := memOptions(t, m)
	opts.MasterAddr, opts.StartCluster = "mem:1", nil
	if _, err := Run(context.Background(), opts); !errors.Is(err, ErrVerify) {
		t.Fatalf("Run = %v, want ErrVerify", err)
	}
	if names, _ := (memClient{m}).List(context.Background(), "/"); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}

func TestRunInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t)
	m := newMemFS()
	opts := memOptions(t, m)
	opts.Duration = time.Minute
	opts.Workloads = []string{WorkloadMetadata}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, opts)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run = %v, want an interrupted error", err)
	}
	if left, _ := os.ReadDir(opts.Dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
