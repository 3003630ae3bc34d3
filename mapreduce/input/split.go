package input

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
)

// Split is a byte range of one input file: what one map task reads.
type Split struct {
	// Path names the file (for errors; the bytes come from the reader).
	Path string
	// Offset and Length delimit the split's range [Offset, Offset+Length).
	Offset, Length int64
	// FileSize is the file's size: reads never go past it. 0 means unknown:
	// read until the reader reports io.EOF.
	FileSize int64
}

// End returns the offset just past the split's range.
func (s Split) End() int64 { return s.Offset + s.Length }

func (s Split) String() string { return fmt.Sprintf("%s[%d,+%d)", s.Path, s.Offset, s.Length) }

// Stats counts what a read of one split did.
type Stats struct {
	Records int64 // records passed to fn
	Bytes   int64 // bytes read from the file
}

// Errors of this package, wrapped with the split and offset.
var (
	// ErrBadSplit is a split with a negative field or one ending past the
	// largest offset.
	ErrBadSplit = errors.New("input: bad split")
	// ErrLineTooLong is a text line longer than MaxLineBytes.
	ErrLineTooLong = errors.New("input: line too long")
)

const (
	// ReadBufferBytes is the size of each read from the file.
	ReadBufferBytes = 1 << 20
	// MaxLineBytes bounds a text line: the bytes before its "\n", a "\r" among
	// them (a chunk's worth).
	MaxLineBytes = 64 << 20
)

func (s Split) check() error {
	if s.Offset < 0 || s.Length < 0 || s.FileSize < 0 || s.Offset > math.MaxInt64-s.Length {
		return fmt.Errorf("%w: %s size %d", ErrBadSplit, s, s.FileSize)
	}
	return nil
}

// limit returns the offset reads stop at.
func (s Split) limit() int64 {
	if s.FileSize > 0 {
		return s.FileSize
	}
	return math.MaxInt64
}

// cursor reads f sequentially from next up to limit, counting bytes and
// checking ctx before every read. It is an io.Reader for the record scanner.
type cursor struct {
	ctx   context.Context
	f     io.ReaderAt
	split Split
	next  int64 // file offset of the next read
	limit int64 // no byte at or past limit is read
	bytes int64 // bytes read so far
	zero  int   // consecutive empty reads without an error
}

// Read implements io.Reader over f[next:limit].
func (c *cursor) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", c.split, err)
	}
	if c.next >= c.limit {
		return 0, io.EOF
	}
	if rest := c.limit - c.next; int64(len(p)) > rest {
		p = p[:rest]
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.f.ReadAt(p, c.next)
	c.next += int64(n)
	c.bytes += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		c.limit = c.next // a shorter file than the split said: stop here
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err != nil:
		return n, fmt.Errorf("read %s at offset %d: %w", c.split, c.next, err)
	case n == 0:
		// io.ReaderAt promises an error with a short read; a reader that
		// breaks that promise must not spin us forever.
		if c.zero++; c.zero > 100 {
			return 0, fmt.Errorf("read %s at offset %d: %w", c.split, c.next, io.ErrNoProgress)
		}
	default:
		c.zero = 0
	}
	return n, nil
}
