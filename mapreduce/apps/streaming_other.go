//go:build !unix

package apps

import "os/exec"

// killGroupOnCancel keeps exec's default: cancellation kills the shell only.
func killGroupOnCancel(*exec.Cmd) {}

// killGroup kills cmd's process.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}

func isBrokenPipe(error) bool { return false }
