package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// RecordWriter appends framed records to one file with many appends in
// flight: records go to the current chunk's primary on one connection
// without waiting for each other's answers (dataclient.AppendStream), so
// that one writer reaches tens of thousands of small records a second
// where RecordAppend pays a round trip and a replication round per record.
//
// Semantics are RecordAppend's, at least once: a record whose chunk was
// full goes to the next chunk, and a record whose append failed is
// appended again (same record id) with RecordAppend's retries; readers
// drop the duplicates. Append returns before the record is durable: Flush
// (or Close) returns once every record appended before it was acknowledged
// by all replicas, or with the error that stopped one for good, after
// which the writer refuses further records.
//
// A RecordWriter is not safe for concurrent use; give each goroutine its
// own (they may share a Client and a file).
type RecordWriter struct {
	c      *Client
	ctx    context.Context
	path   string
	cs     int64 // chunk size
	window int

	idx    int64                    // chunk new records go to
	st     *dataclient.AppendStream // stream to chunk stIdx; nil: open on the next send
	stIdx  int64
	old    []*dataclient.AppendStream // streams left behind, closed at Flush
	q      []pendingRecord            // in flight, oldest first
	err    error                      // the failure that stopped the writer
	closed bool
}

type pendingRecord struct {
	frame []byte
	call  *dataclient.AppendCall   // nil: not sent (no stream could be opened)
	st    *dataclient.AppendStream // the stream it was sent on
	idx   int64                    // chunk it was sent to
	full  int                      // chunks it found full so far
}

// NewRecordWriter returns a writer of records to the existing file at
// path, keeping up to window records in flight (16 if window <= 0). ctx
// bounds every operation of the writer. Close it when done.
func (c *Client) NewRecordWriter(ctx context.Context, path string, window int) (*RecordWriter, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	if window <= 0 {
		window = 16
	}
	cs, err := c.chunkSizeOf(ctx, path)
	if err != nil {
		return nil, err
	}
	idx, err := c.appendTarget(ctx, path)
	if err != nil {
		return nil, err
	}
	return &RecordWriter{c: c, ctx: ctx, path: path, cs: cs, window: window, idx: idx}, nil
}

// Append frames rec and sends it, waiting first for the oldest record in
// flight when window records are. rec may be reused when Append returns.
// An error is the one that stopped the writer (see Flush), or
// ErrRecordTooLarge for this record alone.
func (w *RecordWriter) Append(rec []byte) error {
	if w.closed {
		return fmt.Errorf("append %s: %w", w.path, ErrClosed)
	}
	if w.err != nil {
		return w.err
	}
	if limit := w.cs/4 - RecordHeaderSize; int64(len(rec)) > limit {
		return fmt.Errorf("append %s: %w: %d bytes (max %d)", w.path, ErrRecordTooLarge, len(rec), limit)
	}
	frame, err := EncodeRecord(make([]byte, 0, RecordHeaderSize+len(rec)), RecordID{Writer: w.c.opts.ID, Sequence: w.c.seq.Add(1)}, rec)
	if err != nil {
		return fmt.Errorf("append %s: %w", w.path, err)
	}
	for len(w.q) >= w.window {
		if err := w.settleOldest(); err != nil {
			return w.stop(err)
		}
	}
	if len(frame) > w.c.data.MaxStreamRecord() {
		// Too large to travel inline on a stream: one at a time.
		_, idx, err := w.c.appendFrame(w.ctx, w.path, w.cs, frame, w.idx)
		if err != nil {
			return w.stop(err)
		}
		w.idx = max(w.idx, idx)
		return nil
	}
	w.send(pendingRecord{frame: frame})
	return nil
}

// InFlight returns the number of records sent and not yet acknowledged.
func (w *RecordWriter) InFlight() int { return len(w.q) }

// Flush waits until every record appended so far was acknowledged by
// every replica, re-appending those that failed, and returns the error
// that stopped the writer, if any.
func (w *RecordWriter) Flush() error {
	for len(w.q) > 0 && w.err == nil {
		if err := w.settleOldest(); err != nil {
			w.stop(err)
		}
	}
	w.closeOld()
	return w.err
}

// Close flushes and releases the writer's connections.
func (w *RecordWriter) Close() error {
	if w.closed {
		return w.err
	}
	err := w.Flush()
	w.closed = true
	for _, p := range w.q { // left by a failure: their streams answer them
		if p.call != nil {
			p.call.Wait()
		}
	}
	w.q = nil
	w.dropStream()
	w.closeOld()
	return err
}

// stop records the writer's fatal error.
func (w *RecordWriter) stop(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// send appends p on the stream to chunk w.idx, opening it if needed; if it
// cannot be opened the record is queued unsent and settled by a one-off
// append.
func (w *RecordWriter) send(p pendingRecord) {
	if w.st == nil || w.stIdx != w.idx {
		w.dropStream()
		loc, err := w.c.locateForWrite(w.ctx, w.path, w.idx)
		if err == nil {
			w.st, err = w.c.data.NewAppendStream(dataContext(w.ctx, loc), w.c.chain(loc), loc.Primary, loc.Handle, loc.Version, w.c.opts.SyncWrites, w.window)
		}
		if err != nil {
			w.c.log.Debug("record writer: no stream", "path", w.path, "chunk", w.idx, "err", err)
			p.call, p.st, p.idx = nil, nil, w.idx
			w.q = append(w.q, p)
			return
		}
		w.stIdx = w.idx
	}
	p.call, p.st, p.idx = w.st.Append(p.frame), w.st, w.stIdx
	w.q = append(w.q, p)
}

// dropStream leaves the current stream behind (its records in flight are
// still answered) to be closed once they are settled.
func (w *RecordWriter) dropStream() {
	if w.st != nil {
		w.old = append(w.old, w.st)
		w.st = nil
	}
}

// closeOld closes the streams left behind; with nothing in flight on them
// it does not wait.
func (w *RecordWriter) closeOld() {
	if len(w.q) > 0 {
		return
	}
	for _, s := range w.old {
		s.Close()
	}
	w.old = nil
}

// settleOldest waits for the oldest record in flight and deals with its
// outcome: done, on to the next chunk, or appended again with retries.
func (w *RecordWriter) settleOldest() error {
	p := w.q[0]
	w.q = w.q[1:]
	err := errNotSent
	if p.call != nil {
		_, err = p.call.Wait()
	}
	switch {
	case err == nil:
		w.c.setAppendTarget(w.path, p.idx)
		return nil
	case errors.Is(err, dataclient.ErrChunkFull):
		// GFS 3.3: the chunk was padded; this record (and the others
		// that found it full) go on to the next one.
		if p.full++; p.full > 64 {
			return fmt.Errorf("append %s: chunk %d and the 64 before it were full: %w", w.path, p.idx, err)
		}
		if p.idx >= w.idx {
			w.idx = w.c.nextAppendChunk(w.path, p.idx)
		}
		w.send(p)
		return nil
	}
	// A replica failed (or the stream could not be opened): drop the
	// stream, and append this record again with the full retry logic
	// (fresh lookups, backoff, failover); later records in flight on the
	// same stream come through here too.
	if p.call != nil {
		w.c.log.Debug("record writer: append failed, retrying", "path", w.path, "chunk", p.idx, "err", err)
		w.c.invalidate(w.path, p.idx)
	}
	if p.st != nil && p.st == w.st {
		w.dropStream()
	}
	_, idx, err := w.c.appendFrame(w.ctx, w.path, w.cs, p.frame, max(p.idx, w.idx))
	if err != nil {
		return err
	}
	w.idx = max(w.idx, idx)
	return nil
}

var errNotSent = errors.New("record not sent: no stream to the chunk's primary")
