package dataclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// AppendStream pipelines record appends to one chunk: each Append goes to
// the primary on one connection without waiting for the answers to the
// earlier ones, up to a window of appends in flight, and the answers come
// back in order. The primary reads ahead of its answers, so a stream's
// appends share group-commit rounds instead of costing a round trip each
// (many clients appending small records at a high rate).
//
// Each record carries its data inline, so records are capped at the
// client's InlineBytes as well as MaxRecordBytes. Every append is
// answered on its own: ErrChunkFull for a record that did not fit (the
// chunk was padded; later appends of the stream get it too), any other
// error as from Append. A connection failure fails every append in flight
// and every later one; open a new stream (after a fresh lookup) to go on.
type AppendStream struct {
	c       *Client
	cn      *conn
	tok     []byte
	req     wire.MutationRequest
	flags   uint16
	timeout time.Duration

	// Appends take a window slot first (released when answered), then
	// under mu queue their frame for the writer and their call for the
	// reader, so both see the same order.
	slots  chan struct{} // one per append in flight
	mu     sync.Mutex
	wq     []byte // frames not yet written; guarded by mu
	closed bool   // guarded by mu

	errMu sync.Mutex
	err   error // the first connection failure; guarded by errMu

	kick       chan struct{}    // buffered(1): wq has frames
	inflight   chan *AppendCall // queued, awaiting answers, in order
	done       chan struct{}    // closed when the answer reader exits
	writerDone chan struct{}    // closed when the writer exits
}

// AppendCall is one pipelined append; Wait returns its outcome.
type AppendCall struct {
	id   uint64
	n    int // record bytes
	off  int64
	err  error
	done chan struct{}
}

// Wait blocks until the primary answered the append and returns the offset
// the record was written at within the chunk, or the error.
func (a *AppendCall) Wait() (int64, error) {
	<-a.done
	return a.off, a.err
}

// Done is closed once the append was answered.
func (a *AppendCall) Done() <-chan struct{} { return a.done }

func (a *AppendCall) finish(off int64, err error) {
	a.off, a.err = off, err
	close(a.done)
}

// MaxStreamRecord is the largest record an AppendStream of c carries: it
// travels inline, so at most InlineBytes (and MaxRecordBytes).
func (c *Client) MaxStreamRecord() int { return max(min(MaxRecordBytes, c.inline), 0) }

// NewAppendStream opens a stream of record appends to chunk h at version v
// through primary, whose lease names the rest of chain as secondaries. Up
// to window appends are in flight (at least 1). ctx bounds the dial and
// carries the capability every append presents; the stream lives until
// Close.
func (c *Client) NewAppendStream(ctx context.Context, chain []string, primary string, h, v uint64, sync bool, window int) (*AppendStream, error) {
	if err := checkChain(chain); err != nil {
		return nil, err
	}
	secondaries, err := secondariesOf(chain, primary)
	if err != nil {
		return nil, err
	}
	tok := capability.FromContext(ctx)
	if len(tok) > wire.MaxCapability {
		return nil, fmt.Errorf("append stream: capability of %d bytes: %w", len(tok), ErrBadRequest)
	}
	cn, err := c.get(ctx, primary)
	if err != nil {
		return nil, replicaErr(primary, err)
	}
	_ = cn.nc.SetDeadline(time.Time{})
	s := &AppendStream{
		c: c, cn: cn, tok: append([]byte(nil), tok...), timeout: c.ioTimeout,
		req:        wire.MutationRequest{Handle: h, Version: v, Secondaries: secondaries},
		flags:      wire.FlagInline,
		slots:      make(chan struct{}, max(window, 1)),
		kick:       make(chan struct{}, 1),
		inflight:   make(chan *AppendCall, max(window, 1)),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	if sync {
		s.flags |= wire.FlagSync
	}
	go s.readAnswers() // both stopped by Close
	go s.writeFrames()
	return s, nil
}

// Append queues a record-append of data and returns at once unless the
// window is full (then it waits for the oldest answer). data is copied: it
// may be reused as soon as Append returns. A writer goroutine sends what
// is queued, as many frames per write(2) as have gathered while the last
// one ran.
func (s *AppendStream) Append(data []byte) *AppendCall {
	call := &AppendCall{done: make(chan struct{})}
	if limit := s.c.MaxStreamRecord(); len(data) > limit {
		call.finish(0, fmt.Errorf("append %d bytes to chunk %x: %w (a stream carries records inline, up to %d bytes)",
			len(data), s.req.Handle, ErrTooLarge, limit))
		return call
	}
	if len(data) == 0 {
		call.finish(0, fmt.Errorf("append to chunk %x: empty record: %w", s.req.Handle, ErrBadRequest))
		return call
	}
	sum := xxhash.Sum64(data)
	s.slots <- struct{}{} // waits while the window is full
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		<-s.slots
		call.finish(0, fmt.Errorf("append to chunk %x: stream closed: %w", s.req.Handle, ErrClosed))
		return call
	}
	if err := s.failure(); err != nil {
		<-s.slots
		call.finish(0, err)
		return call
	}
	call.id, call.n = s.c.reqID.Add(1), len(data)
	req := s.req
	req.Length = int64(len(data))
	req.DataSum = sum
	h := wire.Header{Op: wire.OpAppend, Flags: s.flags, RequestID: call.id, PayloadLen: uint32(len(data))}
	s.wq = append(wire.AppendRequest(s.wq, &h, s.tok, &req), data...)
	s.inflight <- call // never waits: the slot bounds it
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return call
}

// writeFrames writes the queued frames until Close, then what is left.
func (s *AppendStream) writeFrames() {
	defer close(s.writerDone)
	var out []byte
	for {
		_, open := <-s.kick
		s.mu.Lock()
		out, s.wq = s.wq, out[:0]
		s.mu.Unlock()
		if len(out) > 0 && s.failure() == nil {
			_ = s.cn.nc.SetWriteDeadline(time.Now().Add(s.timeout))
			if _, err := s.cn.nc.Write(out); err != nil {
				// The reader fails every call in flight when it finds the
				// connection closed.
				s.fail(replicaErr(s.cn.addr, fmt.Errorf("append stream to chunk %x: %w: %w", s.req.Handle, ErrUnavailable, err)))
			}
		}
		if !open {
			return
		}
	}
}

// fail records the stream's first connection failure and closes the
// connection (the reader then fails every call in flight).
func (s *AppendStream) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.cn.nc.Close()
}

func (s *AppendStream) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// readAnswers reads the answers in order and finishes the calls, freeing
// their window slots.
func (s *AppendStream) readAnswers() {
	defer close(s.done)
	var broken error
	for call := range s.inflight {
		if broken != nil {
			call.finish(0, broken)
			<-s.slots
			continue
		}
		_ = s.cn.nc.SetReadDeadline(time.Now().Add(s.timeout))
		_, meta, fatal, err := s.cn.readResponse(wire.OpAppend, call.id)
		var resp wire.MutationResponse
		if err == nil {
			if derr := resp.Decode(meta); derr != nil {
				fatal, err = true, fmt.Errorf("%w: append response from %s: %w", ErrProtocol, s.cn.addr, derr)
			}
		}
		switch {
		case fatal:
			if !errors.Is(err, ErrProtocol) {
				err = fmt.Errorf("append stream to chunk %x at %s: %w: %w", s.req.Handle, s.cn.addr, ErrUnavailable, err)
			}
			s.fail(replicaErr(s.cn.addr, err))
			broken = s.failure()
			call.finish(0, broken)
		case err != nil:
			call.finish(0, replicaErr(s.cn.addr, fmt.Errorf("append to chunk %x (%d bytes): %w", s.req.Handle, call.n, err)))
		default:
			call.finish(resp.Offset, nil)
		}
		<-s.slots
	}
}

// Close waits for the answers to every append sent, then gives the
// connection back (or closes it after a failure). Appends after Close fail
// with ErrClosed. It returns the stream's connection failure, if any.
func (s *AppendStream) Close() error {
	s.mu.Lock()
	first := !s.closed
	if first {
		s.closed = true
		close(s.kick) // the writer sends what is queued, then exits
		close(s.inflight)
	}
	s.mu.Unlock()
	<-s.writerDone
	<-s.done
	err := s.failure()
	if first {
		if err != nil {
			s.cn.nc.Close()
		} else {
			s.c.put(s.cn)
		}
	}
	return err
}
