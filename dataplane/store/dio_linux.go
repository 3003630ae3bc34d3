//go:build linux

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDataFile opens a chunk data file, with O_DIRECT when direct is set.
func openDataFile(path string, flag int, direct bool) (*os.File, error) {
	if direct {
		flag |= unix.O_DIRECT
	}
	return os.OpenFile(path, flag, 0o644)
}

// probeDirect finds out whether dir accepts O_DIRECT and with what
// alignment: memAlign for buffers, offAlign for file offsets and lengths.
// ok=false (with the reason in err) means use buffered I/O.
func probeDirect(dir string) (memAlign, offAlign int, ok bool, err error) {
	path := filepath.Join(dir, fmt.Sprintf(".dioprobe-%d", os.Getpid()))
	defer os.Remove(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o600)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) {
			return 0, 0, false, fmt.Errorf("open with O_DIRECT refused: %w", err)
		}
		return 0, 0, false, err
	}
	defer f.Close()
	memAlign, offAlign = 0, 0
	var st unix.Statx_t
	if e := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &st); e == nil && st.Mask&unix.STATX_DIOALIGN != 0 {
		if st.Dio_offset_align == 0 {
			return 0, 0, false, errors.New("statx: file system does not support direct I/O")
		}
		memAlign, offAlign = int(st.Dio_mem_align), int(st.Dio_offset_align)
	} else {
		// No STATX_DIOALIGN (kernel < 6.1 or file system without it): the
		// page size is a multiple of every logical block size in use.
		memAlign, offAlign = bufAlign, bufAlign
	}
	if memAlign > bufAlign || offAlign&(offAlign-1) != 0 || memAlign&(memAlign-1) != 0 {
		return 0, 0, false, fmt.Errorf("unsupported direct I/O alignment mem=%d off=%d", memAlign, offAlign)
	}
	// Prove it with a real aligned write and read.
	sz := max(offAlign, bufAlign)
	b := GetBuffer(sz)
	defer PutBuffer(b)
	clear(b.B)
	if _, err := f.WriteAt(b.B, 0); err != nil {
		return 0, 0, false, fmt.Errorf("direct write: %w", err)
	}
	if _, err := f.ReadAt(b.B, 0); err != nil {
		return 0, 0, false, fmt.Errorf("direct read: %w", err)
	}
	return memAlign, offAlign, true, nil
}

// preallocate reserves [off, off+n) of f without changing its size.
// errors.Is(err, errors.ErrUnsupported) when the file system cannot.
func preallocate(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return errors.ErrUnsupported
	}
	return err
}

// zeroRange makes [off, off+n) of f read as zeros.
func zeroRange(f *os.File, off, n int64) error {
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	return errors.ErrUnsupported
}

// reservedPastEnd reports whether the file fi describes holds more blocks
// than its size needs: space reserved past its end (by an earlier process).
func reservedPastEnd(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Blocks*512 > alignUp(fi.Size(), 4096)
}

// datasync flushes f's data (and the metadata needed to read it).
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// fsSpace reports free (available to us) and total bytes of dir's file system.
func fsSpace(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}

// willNeed starts reading [off, off+n) of f into the page cache in the
// background; dontNeed drops it. Both are hints: errors are ignored.
func willNeed(f *os.File, off, n int64) { _ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED) }
func dontNeed(f *os.File, off, n int64) { _ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED) }
