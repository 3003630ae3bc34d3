package input

import (
	"bytes"
	"context"
	"fmt"
	"io"
)

// Text reads the lines of split s from f, calling fn(offset, line) for each
// line the split owns (see the package doc: the lines whose first byte lies
// in [s.Offset, s.End())), in file order. line has no "\n" and no trailing
// "\r", and is valid only during the call. An error from fn is returned
// unchanged; other errors name the split.
func Text(ctx context.Context, f io.ReaderAt, s Split, fn func(off int64, line []byte) error) (Stats, error) {
	return readText(ctx, f, s, ReadBufferBytes, MaxLineBytes, fn)
}

// ctxCheckRecords is how often (in records) a read checks its context
// between reads: fn may be slow even when reads are not.
const ctxCheckRecords = 1024

// readText is Text with the read size and the line bound as parameters, so
// tests can drive lines across many buffer refills with small files.
func readText(ctx context.Context, f io.ReaderAt, s Split, bufSize, maxLine int, fn func(int64, []byte) error) (Stats, error) {
	var st Stats
	if err := s.check(); err != nil {
		return st, err
	}
	start := s.Offset
	if start > 0 {
		// One byte early: if it is the "\n" ending the line before, the
		// skip below stops right at s.Offset and a line starting exactly
		// on the boundary stays ours.
		start--
	}
	c := &cursor{ctx: ctx, f: f, split: s, next: start, limit: s.limit()}
	if rest := c.limit - start; rest < int64(bufSize) {
		bufSize = int(rest) // a small file gets a small buffer; fill grows it
	}
	b := &lineBuffer{src: c, buf: make([]byte, max(bufSize, 1)), base: start, maxBuf: maxLine + 1}
	done := func(err error) (Stats, error) {
		st.Bytes = c.bytes
		return st, err
	}

	if s.Offset > 0 {
		// Skip through the first "\n": the tail of a line an earlier split
		// owns. Nothing is kept, so the buffer never grows here.
		for {
			if i := bytes.IndexByte(b.buf[b.r:b.w], '\n'); i >= 0 {
				b.r += i + 1
				break
			}
			b.r = b.w
			if b.eof {
				return done(nil)
			}
			if err := b.fill(); err != nil {
				return done(err)
			}
		}
	}

	end := s.End()
	scanned := 0 // leading bytes of buf[r:w] known to hold no "\n"
	for {
		off := b.base + int64(b.r)
		if off >= end {
			return done(nil)
		}
		var line []byte
		i := bytes.IndexByte(b.buf[b.r+scanned:b.w], '\n')
		switch {
		case i >= 0:
			line = b.buf[b.r : b.r+scanned+i]
			b.r += scanned + i + 1
		case b.w-b.r > maxLine:
			return done(fmt.Errorf("%w: line at offset %d of %s is over %d bytes", ErrLineTooLong, off, s, maxLine))
		case !b.eof:
			scanned = b.w - b.r
			if err := b.fill(); err != nil {
				return done(err)
			}
			continue
		case b.r == b.w:
			return done(nil) // the file ends with "\n" (or is empty)
		default:
			line = b.buf[b.r:b.w] // a final line without "\n"
			b.r = b.w
		}
		scanned = 0
		if len(line) > maxLine {
			return done(fmt.Errorf("%w: line at offset %d of %s is %d bytes (max %d)", ErrLineTooLong, off, s, len(line), maxLine))
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		st.Records++
		if st.Records%ctxCheckRecords == 0 {
			if err := ctx.Err(); err != nil {
				return done(fmt.Errorf("read %s: %w", s, err))
			}
		}
		if err := fn(off, line); err != nil {
			return done(err)
		}
	}
}

// lineBuffer holds the bytes read from a cursor that are not yet returned.
type lineBuffer struct {
	src    *cursor
	buf    []byte
	r, w   int   // buf[r:w] is read but not consumed
	base   int64 // file offset of buf[0]
	eof    bool  // src has no more bytes
	maxBuf int   // buf never grows past this (the longest line and its "\n")
}

// fill moves buf[r:w] to the front, grows buf when that leaves no room,
// and reads once more from src; at the end of src it sets eof.
func (b *lineBuffer) fill() error {
	if b.r > 0 {
		n := copy(b.buf, b.buf[b.r:b.w])
		b.base += int64(b.r)
		b.w, b.r = n, 0
	}
	if b.w == len(b.buf) {
		n := min(max(2*len(b.buf), 1), b.maxBuf)
		if n <= len(b.buf) {
			// Callers stop at a line over the bound before this.
			return fmt.Errorf("%w: at offset %d of %s", ErrLineTooLong, b.base, b.src.split)
		}
		nb := make([]byte, n)
		copy(nb, b.buf[:b.w])
		b.buf = nb
	}
	n, err := b.src.Read(b.buf[b.w:])
	b.w += n
	if err == io.EOF {
		b.eof = true
		return nil
	}
	return err
}
