package oplog

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data (and the size change) without other metadata.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
