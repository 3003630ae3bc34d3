package bench

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens path with O_DIRECT added to flag. File systems that refuse
// O_DIRECT (tmpfs) get the file opened without it and direct = false, so a
// baseline still runs and says it was buffered.
func openDirect(path string, flag int, perm os.FileMode) (f *os.File, direct bool, err error) {
	f, err = os.OpenFile(path, flag|unix.O_DIRECT, perm)
	if err == nil {
		return f, true, nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return nil, false, err
	}
	f, err = os.OpenFile(path, flag, perm)
	return f, false, err
}

// syncData makes f's written data durable (fdatasync).
func syncData(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
