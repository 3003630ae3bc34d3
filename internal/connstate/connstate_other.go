//go:build !linux

package connstate

import "net"

// peerClosed cannot look at the socket here: callers fall back on their
// retry of a request that failed on a reused connection.
func peerClosed(net.Conn) bool { return false }
