//go:build unix

package apps

import (
	"errors"
	"os/exec"
	"syscall"
)

// killGroupOnCancel runs cmd in a process group of its own and makes the
// context's cancellation kill the whole group: "sh -c 'a | b'" leaves a and
// b holding the pipes when only sh dies.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills cmd's process group.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// isBrokenPipe reports a write to a child that has closed its input.
func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }
