//go:build !linux

package store

import (
	"errors"
	"os"
)

// Portable fallback: no O_DIRECT, no preallocation; buffered writes plus
// fsync keep the same durability contract.

func openDataFile(path string, flag int, direct bool) (*os.File, error) {
	return os.OpenFile(path, flag, 0o644)
}

func probeDirect(dir string) (memAlign, offAlign int, ok bool, err error) {
	return 0, 0, false, errors.New("direct I/O not implemented on this platform")
}

func preallocate(f *os.File, off, n int64) error { return errors.ErrUnsupported }

func zeroRange(f *os.File, off, n int64) error { return errors.ErrUnsupported }

func datasync(f *os.File) error { return f.Sync() }

func reservedPastEnd(fi os.FileInfo) bool { return false }

func fsSpace(dir string) (free, total int64, err error) {
	return 0, 0, errors.ErrUnsupported
}

func willNeed(f *os.File, off, n int64) {}
func dontNeed(f *os.File, off, n int64) {}
