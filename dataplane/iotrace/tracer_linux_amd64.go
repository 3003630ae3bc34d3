//go:build linux && amd64

package iotrace

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Tracer is a loaded and attached set of programs tracing one process.
// Close detaches them.
type Tracer struct {
	pid   int
	objs  iotraceObjects
	links []link.Link
}

// permissionError marks err with ErrPermission when the kernel refused
// for lack of privilege (EPERM loading, EACCES opening tracefs or
// perf events), keeping the kernel's words.
func permissionError(what string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		// The kernel's errno is the whole story; cilium's chain of
		// contexts (and its MEMLOCK hint) would only mislead here.
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fmt.Errorf("%w (%s: %v)", ErrPermission, what, errno)
		}
		return fmt.Errorf("%w (%s: %v)", ErrPermission, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Open loads the programs with pid as their target and attaches them.
func Open(pid int) (*Tracer, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. An
	// unprivileged caller may not raise it; the load below then fails
	// with the error that says why, so this one is not reported.
	_ = rlimit.RemoveMemlock()
	spec, err := loadIotrace()
	if err != nil {
		return nil, fmt.Errorf("parse BPF object: %w", err)
	}
	if err := spec.Variables["target_tgid"].Set(uint32(pid)); err != nil {
		return nil, fmt.Errorf("set target pid: %w", err)
	}
	t := &Tracer{pid: pid}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, permissionError("loading BPF programs", err)
	}
	p := &t.objs.iotracePrograms
	attach := []struct {
		group, name string
		prog        *ebpf.Program
	}{
		{"syscalls", "sys_enter_pread64", p.EnterPread64}, {"syscalls", "sys_exit_pread64", p.ExitPread64},
		{"syscalls", "sys_enter_pwrite64", p.EnterPwrite64}, {"syscalls", "sys_exit_pwrite64", p.ExitPwrite64},
		{"syscalls", "sys_enter_fdatasync", p.EnterFdatasync}, {"syscalls", "sys_exit_fdatasync", p.ExitFdatasync},
		{"syscalls", "sys_enter_fsync", p.EnterFsync}, {"syscalls", "sys_exit_fsync", p.ExitFsync},
		{"syscalls", "sys_enter_sendfile64", p.EnterSendfile64}, {"syscalls", "sys_exit_sendfile64", p.ExitSendfile64},
		{"syscalls", "sys_enter_splice", p.EnterSplice}, {"syscalls", "sys_exit_splice", p.ExitSplice},
		// Completion first: a request issued after attaching is then
		// always seen completing.
		{"block", "block_rq_complete", p.RqComplete},
		{"block", "block_rq_insert", p.RqInsert}, {"block", "block_rq_issue", p.RqIssue},
	}
	for _, a := range attach {
		l, err := link.Tracepoint(a.group, a.name, a.prog, nil)
		if err != nil {
			t.Close()
			return nil, permissionError("attaching "+a.group+":"+a.name, err)
		}
		t.links = append(t.links, l)
	}
	return t, nil
}

// PID returns the traced process id.
func (t *Tracer) PID() int { return t.pid }

// Snapshot reads every histogram's cumulative counters.
func (t *Tracer) Snapshot() (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	for k := range s.Hists {
		var v iotraceHist
		if err := t.objs.Hists.Lookup(uint32(k), &v); err != nil {
			return Snapshot{}, fmt.Errorf("read histogram %s: %w", kindNames[k], err)
		}
		s.Hists[k] = Hist{Count: v.Count, Errors: v.Errors, Bytes: v.Bytes, TotalNs: v.TotalNs, Slots: v.Slots}
	}
	return s, nil
}

// Close detaches the programs and frees their maps.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}
