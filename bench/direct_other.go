//go:build !linux

package bench

import "os"

// openDirect opens path without O_DIRECT (not available on this platform).
func openDirect(path string, flag int, perm os.FileMode) (*os.File, bool, error) {
	f, err := os.OpenFile(path, flag, perm)
	return f, false, err
}

// syncData makes f's written data durable.
func syncData(f *os.File) error { return f.Sync() }
