package client

import (
	"context"
	"errors"
	"io"
	"sync"
)

// Reader streams a file from the start with a sliding window of segments
// (Options.ReadSegmentBytes each, in file order, on different replicas and
// chunks): one in flight at first, doubling as segments are consumed up to
// Options.ReadaheadBytes, a new one started as the oldest is consumed. It implements io.Reader and io.WriterTo (io.Copy uses the latter and
// skips one copy). It is not safe for concurrent use; Close stops its
// background reads and must be called.
type Reader struct {
	f      *File
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	segSize   int64
	chunkSize int64
	depth     int        // most segments in flight (Options.ReadaheadBytes)
	window    int        // segments allowed in flight now: 1, doubling up to depth
	next      int64      // file offset of the next segment to schedule
	queue     []*segment // scheduled segments in file order
	cur       *segment   // segment being consumed
	pos       int        // consumed bytes of cur
	ended     bool       // a segment hit EOF or an error: schedule no more
	err       error      // sticky error (io.EOF at the end)
	closed    bool
	pool      sync.Pool
}

type segment struct {
	buf  []byte
	n    int
	err  error
	done chan struct{}
}

// NewReader returns a streaming reader of f starting at offset 0. ctx
// bounds all its reads.
func (f *File) NewReader(ctx context.Context) *Reader {
	return f.NewReaderAt(ctx, 0)
}

// NewReaderAt is NewReader starting at off.
func (f *File) NewReaderAt(ctx context.Context, off int64) *Reader {
	ctx, cancel := context.WithCancel(ctx)
	r := &Reader{f: f, ctx: ctx, cancel: cancel, next: off}
	return r
}

func (r *Reader) init() error {
	if r.segSize != 0 {
		return nil
	}
	cs, err := r.f.c.chunkSizeOf(r.ctx, r.f.path)
	if err != nil {
		return err
	}
	r.segSize = min(cs, r.f.c.opts.ReadSegmentBytes)
	r.depth = int(max(1, min(64, r.f.c.opts.ReadaheadBytes/r.segSize)))
	r.window = 1
	r.chunkSize = cs
	size := int(r.segSize)
	r.pool.New = func() any { b := make([]byte, size); return &b }
	return nil
}

// fill schedules segments until window are in flight.
func (r *Reader) fill() {
	for !r.ended && len(r.queue) < r.window {
		// Segments end at chunk boundaries so each is one chunk read.
		n := min(r.segSize-r.next%r.segSize, r.chunkSize-r.next%r.chunkSize)
		bp := r.pool.Get().(*[]byte)
		s := &segment{buf: (*bp)[:n], done: make(chan struct{})}
		off := r.next
		r.next += n
		r.queue = append(r.queue, s)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(s.done)
			s.n, s.err = r.f.ReadAtContext(r.ctx, s.buf, off)
		}()
	}
}

// nextSegment makes cur the next finished segment in file order.
func (r *Reader) nextSegment() error {
	if r.cur != nil {
		b := r.cur.buf[:cap(r.cur.buf)]
		r.pool.Put(&b)
		r.cur = nil
	}
	if r.err != nil {
		return r.err
	}
	if err := r.init(); err != nil {
		r.err = err
		return err
	}
	r.fill()
	if len(r.queue) == 0 {
		r.err = io.EOF
		return r.err
	}
	s := r.queue[0]
	r.queue = r.queue[1:]
	// Slow start: segments started together share the bandwidth and end
	// together, so a reader that started depth at once would wait for
	// all of them before its first byte. Starting one and doubling the
	// window as segments are consumed keeps the next-needed segment
	// ahead of the others.
	select {
	case <-s.done:
	case <-r.ctx.Done():
		<-s.done
	}
	r.window = min(r.depth, r.window*2)
	if s.err == nil {
		r.fill() // keep the window busy while the caller consumes s
	}
	if s.err != nil {
		// Stop scheduling: the file ends here (io.EOF) or reading failed.
		r.ended = true
		r.drain()
		if errors.Is(s.err, io.EOF) {
			r.err = io.EOF
		} else {
			r.err = s.err
			s.n = 0
		}
	}
	r.cur, r.pos = s, 0
	if s.n == 0 && r.err != nil {
		return r.err
	}
	return nil
}

// drain cancels and waits for the segments scheduled after an ending one.
func (r *Reader) drain() {
	if len(r.queue) == 0 {
		return
	}
	for _, s := range r.queue {
		<-s.done
		b := s.buf[:cap(s.buf)]
		r.pool.Put(&b)
	}
	r.queue = nil
}

// ErrReaderClosed is returned by a Reader's methods after Close.
var ErrReaderClosed = errors.New("gfs: reader closed")

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, ErrReaderClosed
	}
	for r.cur == nil || r.pos == r.cur.n {
		if err := r.nextSegment(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur.buf[r.pos:r.cur.n])
	r.pos += n
	return n, nil
}

// WriteTo implements io.WriterTo.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r.closed {
		return 0, ErrReaderClosed
	}
	var total int64
	for {
		if r.cur != nil && r.pos < r.cur.n {
			n, err := w.Write(r.cur.buf[r.pos:r.cur.n])
			r.pos += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			continue
		}
		if err := r.nextSegment(); err != nil {
			if errors.Is(err, io.EOF) {
				return total, nil
			}
			return total, err
		}
	}
}

// Close stops the background reads and waits for them.
func (r *Reader) Close() error {
	r.cancel()
	r.wg.Wait()
	r.queue = nil
	r.cur = nil
	r.closed = true
	return nil
}
