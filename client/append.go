package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gfs-go/gfs/dataplane/dataclient"
)

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// RecordAppend appends rec to the file at path as one framed record at an
// offset the chunk's primary chooses (GFS 3.3) and returns the file offset
// of the record's frame (what RecordReader reports as Record.Offset).
//
// Append is at-least-once: on failure RecordAppend retries with the same
// record id, so the file may hold the record more than once, and a record
// whose append finally failed may still appear; RecordReader hides both.
// A record larger than a quarter chunk minus RecordHeaderSize fails with
// ErrRecordTooLarge.
func (c *Client) RecordAppend(ctx context.Context, path string, rec []byte) (int64, error) {
	if err := c.checkOpen(); err != nil {
		return 0, err
	}
	cs, err := c.chunkSizeOf(ctx, path)
	if err != nil {
		return 0, err
	}
	if limit := cs/4 - RecordHeaderSize; int64(len(rec)) > limit {
		return 0, fmt.Errorf("append %s: %w: %d bytes (max %d)", path, ErrRecordTooLarge, len(rec), limit)
	}
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	frame, err := EncodeRecord((*bp)[:0], RecordID{Writer: c.opts.ID, Sequence: c.seq.Add(1)}, rec)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", path, err)
	}
	*bp = frame

	idx, err := c.appendTarget(ctx, path)
	if err != nil {
		return 0, err
	}
	off, _, err := c.appendFrame(ctx, path, cs, frame, idx)
	return off, err
}

// appendFrame record-appends an encoded frame to path, trying chunk idx
// first, with the GFS retries: on to the next chunk when one is full,
// after a fresh lookup when a replica failed. It returns the frame's file
// offset and the chunk it went to.
func (c *Client) appendFrame(ctx context.Context, path string, cs int64, frame []byte, idx int64) (int64, int64, error) {
	bo := c.newBackoff()
	full := 0
	for {
		loc, err := c.locateForWrite(ctx, path, idx)
		if err == nil {
			var off int64
			off, err = c.data.Append(dataContext(ctx, loc), c.chain(loc), loc.Primary, loc.Handle, loc.Version, frame, c.opts.SyncWrites)
			if err == nil {
				c.setAppendTarget(path, idx)
				return idx*cs + off, idx, nil
			}
			if errors.Is(err, dataclient.ErrChunkFull) {
				// GFS 3.3: the primary padded the chunk; go on to the next.
				// A record is at most a quarter chunk, so a fresh chunk
				// only fills first under heavy contention; never loop on it.
				if full++; full > 64 {
					return 0, idx, fmt.Errorf("append %s: chunk %d and the 64 before it were full: %w", path, idx, err)
				}
				idx = c.nextAppendChunk(path, idx)
				continue
			}
			if errors.Is(err, dataclient.ErrTooLarge) {
				return 0, idx, fmt.Errorf("append %s: %w: %w", path, ErrRecordTooLarge, err)
			}
			err = fmt.Errorf("append %s chunk %d (handle %x v%d, primary %s): %w", path, idx, loc.Handle, loc.Version, loc.Primary, err)
		}
		if !c.mutationRetryable(err, loc.Primary) || ctx.Err() != nil {
			return 0, idx, err
		}
		c.log.Debug("append failed, retrying", "path", path, "chunk", idx, "err", err)
		c.invalidate(path, idx)
		if !bo.sleep(ctx) {
			return 0, idx, err
		}
	}
}

// nextAppendChunk is the chunk to append to after chunk idx was full:
// the next one, or a later one other appenders reached meanwhile (the last
// lookup told how many chunks the file has).
func (c *Client) nextAppendChunk(path string, idx int64) int64 {
	idx++
	if fc, ok := c.cachedFileChunks(path); ok && fc-1 > idx {
		idx = fc - 1
	}
	return idx
}

// appendTarget returns the chunk index appends to path should try first:
// the file's last chunk (0 for an empty file), or the chunk the last append
// went to if that is later.
func (c *Client) appendTarget(ctx context.Context, path string) (int64, error) {
	c.mu.Lock()
	fl := c.files[path]
	if fl != nil && fl.appendIdx >= 0 {
		idx := max(fl.appendIdx, fl.fileChunks-1)
		c.mu.Unlock()
		return idx, nil
	}
	c.mu.Unlock()
	_, fc, err := c.lookup(ctx, path, 0, 1, false, false)
	if err != nil {
		return 0, err
	}
	return max(fc-1, 0), nil
}

func (c *Client) setAppendTarget(path string, idx int64) {
	c.mu.Lock()
	if fl := c.files[path]; fl != nil && idx > fl.appendIdx {
		fl.appendIdx = idx
	}
	c.mu.Unlock()
}

// NewRecordReader returns a reader of the records appended to path with
// RecordAppend (see RecordReader). Errors opening the file are returned by
// the first Next. Close it when done.
func (c *Client) NewRecordReader(ctx context.Context, path string) *RecordReader {
	lr := &lazyFileReader{c: c, ctx: ctx, path: path}
	maxPayload := 0
	if cs := c.chunkSize.Load(); cs > 0 {
		maxPayload = int(cs/4 - RecordHeaderSize)
	}
	rr := NewRecordScanner(lr, maxPayload)
	rr.closer = lr.Close
	return rr
}

// lazyFileReader opens a file's streaming Reader on first use.
type lazyFileReader struct {
	c    *Client
	ctx  context.Context
	path string
	r    *Reader
}

func (l *lazyFileReader) Read(p []byte) (int, error) {
	if l.r == nil {
		f, err := l.c.Open(l.ctx, l.path)
		if err != nil {
			return 0, err
		}
		l.r = f.NewReader(l.ctx)
	}
	return l.r.Read(p)
}

func (l *lazyFileReader) Close() error {
	if l.r != nil {
		return l.r.Close()
	}
	return nil
}

var _ io.Reader = (*lazyFileReader)(nil)
