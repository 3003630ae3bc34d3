// Package dirlock gives a daemon exclusive use of its data directory for
// as long as it runs. Two processes on one directory corrupt it (two
// masters both appending to one op log, the second cutting off the first's
// records as a "torn tail"; two chunkservers rewriting one chunk), so every
// daemon with a -dir takes the lock before it reads anything there and
// refuses to start when another process holds it.
//
// The lock is an flock(2) on the file LOCK inside the directory: the kernel
// drops it when the process dies, kill -9 included, so a crash never leaves
// a stale lock behind and a restart needs no clean-up. The holder writes
// its PID into the file so the refusal can name it. A lock is per open
// file, not per process: a second Acquire of a held directory fails even in
// the same process, until Release.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside a locked directory.
const FileName = "LOCK"

// ErrLocked is matched (errors.Is) by the error Acquire returns when
// another holder has the directory.
var ErrLocked = errors.New("directory is in use by another process")

// LockedError says which directory is held and, when known, by whom.
type LockedError struct {
	Dir string
	PID int // 0 when the holder's PID could not be read
}

func (e *LockedError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("directory %s is in use by %s (it holds %s); stop it first, or use another directory",
		e.Dir, holder, filepath.Join(e.Dir, FileName))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held directory lock. Release gives it up.
type Lock struct {
	dir string
	f   *os.File
}

// Acquire creates dir if needed and locks it, without waiting: when
// another holder has it, the error is a *LockedError (ErrLocked).
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	if !held {
		pid := readPID(f)
		f.Close()
		return nil, &LockedError{Dir: dir, PID: pid}
	}
	// The PID is only for the refusal message: failing to write it
	// changes nothing about the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{dir: dir, f: f}, nil
}

// Dir returns the locked directory.
func (l *Lock) Dir() string { return l.dir }

// Release gives the lock up (the LOCK file stays: removing it would let a
// newcomer lock a fresh file while a waiter still holds the old one). Safe
// to call more than once, and on nil.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Closing the file drops the flock.
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("dirlock: release %s: %w", l.dir, err)
	}
	return nil
}

func readPID(f *os.File) int {
	var b [32]byte
	n, _ := f.ReadAt(b[:], 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
