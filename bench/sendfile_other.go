//go:build !linux

package bench

import (
	"io"
	"net"
	"os"
)

// sendFile copies n bytes of f from off to conn (the runtime may use a
// zero-copy path where the platform has one).
func sendFile(conn *net.TCPConn, f *os.File, off, n int64) (int64, error) {
	return io.Copy(conn, io.NewSectionReader(f, off, n))
}
