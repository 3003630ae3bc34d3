package store

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors returned (wrapped with context) by the store.
var (
	// ErrNotFound: the chunk does not exist in this store.
	ErrNotFound = errors.New("store: chunk not found")
	// ErrExists: Create of a handle that already exists.
	ErrExists = errors.New("store: chunk already exists")
	// ErrChunkFull: an Append does not fit in the chunk; nothing was written.
	ErrChunkFull = errors.New("store: chunk full")
	// ErrOutOfRange: an offset, length or size outside what the chunk allows.
	ErrOutOfRange = errors.New("store: offset or length out of range")
	// ErrNoSpace: the file system is full. Errors that carry it also wrap
	// syscall.ENOSPC.
	ErrNoSpace = errors.New("store: no space left on device")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrChecksum: stored bytes and their checksum disagree. Returned as a
	// *ChecksumError naming the chunk and block.
	ErrChecksum = errors.New("store: checksum mismatch")
)

// ChecksumError reports a block whose bytes do not match their stored
// checksum. Block is the index of the 64 KiB block inside the chunk, or -1
// when the chunk's metadata itself is unreadable.
type ChecksumError struct {
	Handle Handle
	Block  int
}

func (e *ChecksumError) Error() string {
	if e.Block < 0 {
		return fmt.Sprintf("store: chunk %016x: metadata corrupt", uint64(e.Handle))
	}
	return fmt.Sprintf("store: chunk %016x block %d: checksum mismatch", uint64(e.Handle), e.Block)
}

// Is makes errors.Is(err, ErrChecksum) true for a *ChecksumError.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// ioError classifies an error from the operating system: ENOSPC (and EDQUOT)
// become ErrNoSpace while still wrapping the original error.
func ioError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}
