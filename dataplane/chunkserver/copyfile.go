package chunkserver

import (
	"fmt"
	"io"
	"os"
)

// copyBufBytes is the SendCopy buffer per connection.
const copyBufBytes = 1 << 20

// copyFile sends n bytes of f from off with pread into a per-connection
// buffer and write: one user-space copy, used as the SendCopy mode and as
// the portable fallback.
func (c *dataConn) copyFile(f *os.File, off, n int64) error {
	if c.copy == nil {
		c.copy = make([]byte, copyBufBytes)
	}
	for n > 0 {
		b := c.copy[:min(n, int64(len(c.copy)))]
		r, err := f.ReadAt(b, off)
		if r < len(b) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read chunk file: %w", err)
		}
		if _, err := c.nc.Write(b); err != nil {
			return err
		}
		off += int64(r)
		n -= int64(r)
	}
	return nil
}
