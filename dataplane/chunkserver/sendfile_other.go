//go:build !linux

package chunkserver

import "os"

// defaultSendMode: without sendfile support, copy through user space.
const defaultSendMode = SendCopy

func (c *dataConn) sendFile(f *os.File, off, n int64) error { return c.copyFile(f, off, n) }
