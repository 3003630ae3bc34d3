package bench

import (
	"errors"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendFile sends n bytes of f from off to conn with sendfile(2): the bytes go
// from the page cache to the socket without passing through user space.
func sendFile(conn *net.TCPConn, f *os.File, off, n int64) (int64, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	src := int(f.Fd())
	var sent int64
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for sent < n {
			w, e := unix.Sendfile(int(fd), src, &off, int(min(n-sent, 1<<30)))
			if w > 0 {
				sent += int64(w)
			}
			switch {
			case errors.Is(e, unix.EAGAIN):
				return false // wait until the socket is writable
			case errors.Is(e, unix.EINTR):
				continue
			case e != nil:
				serr = e
				return true
			case w == 0:
				serr = io.ErrUnexpectedEOF // file shorter than asked
				return true
			}
		}
		return true
	})
	if serr != nil {
		return sent, serr
	}
	return sent, err
}
