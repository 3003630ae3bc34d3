//go:build linux

package chunkserver

import (
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gfs-go/gfs/internal/connlimit"
)

// defaultSendMode is pread+write: measured faster than sendfile over
// loopback on the reference machine (BenchmarkRead/interleaved, see
// docs/protocol.md "sendfile versus read+write"). SendFile stays selectable
// for real NICs, where it saves the server's copy.
const defaultSendMode = SendCopy

// sendFile sends n bytes of f from off to the connection: with sendfile(2)
// (the kernel moves page-cache pages to the socket, no user-space copy; the
// offset is passed explicitly so concurrent readers of one file do not
// race on its position) or, in SendCopy mode, with pread+write.
func (c *dataConn) sendFile(f *os.File, off, n int64) error {
	// Ask for the whole range at once: pages not cached are read with
	// large requests while the first ones go out, instead of one
	// readahead window after the other as the send reaches them.
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED)
	tc, ok := connlimit.Unwrap(c.nc).(*net.TCPConn)
	if SendMode(c.s.sendMode.Load()) == SendCopy || !ok {
		return c.copyFile(f, off, n)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	fd := int(f.Fd())
	var serr error
	werr := rc.Write(func(s uintptr) bool {
		for n > 0 {
			w, err := unix.Sendfile(int(s), fd, &off, int(min(n, 1<<30)))
			if w > 0 {
				n -= int64(w)
			}
			switch {
			case err == unix.EAGAIN:
				return false // wait until writable (honours the deadline)
			case err == unix.EINTR:
			case err != nil:
				serr = fmt.Errorf("sendfile: %w", err)
				return true
			case w == 0:
				serr = fmt.Errorf("sendfile: %w: file shorter than its range", io.ErrUnexpectedEOF)
				return true
			}
		}
		return true
	})
	if werr != nil {
		return werr
	}
	return serr
}
