// Package connstate tells whether a pooled, idle connection is still
// usable. Servers close connections that sit idle (the chunkserver after
// its IdleTimeout), and a pool that hands such a connection to the next
// request makes that request fail for nothing; a look at the socket before
// reuse catches the close that already arrived. A close racing with the
// reuse is left to the caller's retry.
package connstate

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// PeerClosed reports whether the peer of an idle connection closed or reset
// it, or sent bytes nobody asked for (then the connection is not at a frame
// boundary either); in each case it must not be reused. It never blocks and
// consumes nothing. It returns false when it cannot tell (a connection
// without a file descriptor, or a platform without the check).
func PeerClosed(nc net.Conn) bool { return peerClosed(nc) }

// IsPeerClose reports whether err, from I/O on a connection, says the peer
// closed or reset it (not a timeout: a slow peer may still be working on
// the request). A request that failed so on a reused connection before any
// byte of its answer arrived most likely met a close of the idle
// connection and may be sent again on a new one.
func IsPeerClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
