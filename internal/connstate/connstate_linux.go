package connstate

import (
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for {
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
				closed = false // nothing to read: open and idle
			case err != nil:
				closed = true // reset, or otherwise broken
			default:
				closed = true // 0 bytes: EOF; more: unasked-for bytes
			}
			return true // never wait for readiness
		}
	})
	return err != nil || closed
}
