package oplog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// Errors returned by the log.
var (
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("oplog: closed")
	// ErrCorrupt reports damage that is not a torn tail (acknowledged
	// records would be lost by dropping it).
	ErrCorrupt = errors.New("oplog: corrupt")
	// ErrTooLarge reports a record above Options.MaxRecordBytes.
	ErrTooLarge = errors.New("oplog: record too large")
	// ErrCheckpointBusy reports a checkpoint started while another runs.
	ErrCheckpointBusy = errors.New("oplog: checkpoint already in progress")
)

const (
	frameHeader  = 16
	fileHeader   = 16
	segMagic     = "GFSLOG01"
	ckptMagic    = "GFSCKP01"
	trailerSeq   = ^uint64(0)
	defaultLimit = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tunes a Log. The zero value is valid.
type Options struct {
	// Logger receives recovery notes (dropped tails); nil = discard.
	Logger *slog.Logger
	// MaxRecordBytes caps one record; 0 = 64 MiB.
	MaxRecordBytes int
}

// Log is an open operation log. Append, Wait and StartCheckpoint are safe for
// concurrent use.
type Log struct {
	dir   string
	opts  Options
	log   *slog.Logger
	kick  chan struct{}
	stopc chan struct{}
	wg    sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	seq      uint64     // last assigned sequence number
	cur      *batch     // batch collecting appends
	sealed   []*batch   // batches closed to appends, flushed before cur
	err      error      // sticky write error, or ErrClosed
	ckptBusy bool
	closed   bool

	// owned by the flusher goroutine (and Open before it starts)
	file     *os.File
	durable  uint64
	prevCkpt uint64 // sequence of the checkpoint before the newest
	lastCkpt uint64 // sequence of the newest checkpoint (0 = none)
}

// batch is the unit of group commit: the frames of many Appends written and
// fdatasynced together.
type batch struct {
	buf    []byte
	last   uint64
	rollTo uint64 // when non-zero: after this batch, continue in log-rollTo
	done   chan struct{}
	err    error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// Ticket identifies an appended record; Wait on it for durability.
type Ticket struct {
	b   *batch
	Seq uint64
}

// Wait blocks until the record is durable (nil) or its write failed.
// The zero Ticket is already durable.
func (t Ticket) Wait() error {
	if t.b == nil {
		return nil
	}
	<-t.b.done
	return t.b.err
}

// Replayer receives the recovered state in Open: first every record of the
// newest valid checkpoint, then every log record after it, in order.
type Replayer struct {
	Checkpoint func(rec []byte) error
	Record     func(seq uint64, rec []byte) error
}

// Open recovers the log in dir (created if missing), feeding the state to r,
// and returns it ready for appends.
func Open(dir string, opts Options, r Replayer) (*Log, error) {
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = defaultLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("oplog: %w", err)
	}
	l := &Log{dir: dir, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), stopc: make(chan struct{}), cur: newBatch()}
	if err := l.recover(r); err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.flusher()
	return l, nil
}

// Seq returns the sequence number of the last appended record.
func (l *Log) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Append adds rec to the log and returns at once; the record is durable once
// the returned Ticket's Wait returns nil. Records are durable in append
// order: a record is never durable without all records before it.
func (l *Log) Append(rec []byte) (Ticket, error) {
	if len(rec) > l.opts.MaxRecordBytes {
		return Ticket{}, fmt.Errorf("append %d bytes: %w", len(rec), ErrTooLarge)
	}
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return Ticket{}, err
	}
	l.seq++
	b := l.cur
	b.buf = appendFrame(b.buf, l.seq, rec)
	b.last = l.seq
	t := Ticket{b: b, Seq: l.seq}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return t, nil
}

// Commit appends rec and waits until it is durable.
func (l *Log) Commit(rec []byte) error {
	t, err := l.Append(rec)
	if err != nil {
		return err
	}
	return t.Wait()
}

// Close flushes what was appended, stops the flusher and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stopc)
	l.wg.Wait()
	l.mu.Lock()
	if l.err == nil {
		l.err = ErrClosed
	}
	b := l.cur
	l.mu.Unlock()
	// Appends that raced with Close after the final flush fail.
	b.err = ErrClosed
	close(b.done)
	return l.file.Close()
}

func appendFrame(dst []byte, seq uint64, rec []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(rec)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, rec)
	binary.LittleEndian.PutUint32(h[4:], crc)
	dst = append(dst, h[:]...)
	return append(dst, rec...)
}

// flusher writes and fdatasyncs batches in order until Close.
func (l *Log) flusher() {
	defer l.wg.Done()
	for {
		stopping := false
		select {
		case <-l.kick:
		case <-l.stopc:
			stopping = true
		}
		for {
			l.mu.Lock()
			var b *batch
			if len(l.sealed) > 0 {
				b = l.sealed[0]
				l.sealed = l.sealed[1:]
			} else {
				b = l.cur
				if len(b.buf) == 0 && b.rollTo == 0 {
					l.mu.Unlock()
					break
				}
				l.cur = newBatch()
			}
			l.mu.Unlock()
			l.flush(b)
		}
		if stopping {
			return
		}
	}
}

func (l *Log) flush(b *batch) {
	l.mu.Lock()
	err := l.err
	if errors.Is(err, ErrClosed) {
		err = nil // Close flushes what was appended before it
	}
	l.mu.Unlock()
	if err == nil && len(b.buf) > 0 {
		if _, err = l.file.Write(b.buf); err == nil {
			err = fdatasync(l.file)
		}
		if err == nil {
			l.durable = b.last
		}
	}
	if err == nil && b.rollTo != 0 {
		err = l.roll(b.rollTo)
	}
	if err != nil {
		err = fmt.Errorf("oplog write: %w", err)
		l.mu.Lock()
		if l.err == nil || errors.Is(l.err, ErrClosed) {
			l.err = err
		}
		l.mu.Unlock()
	}
	b.err = err
	close(b.done)
}

// roll seals the current segment and continues in log-first.
func (l *Log) roll(first uint64) error {
	f, err := createSegment(l.dir, first)
	if err != nil {
		return err
	}
	old := l.file
	l.file = f
	return old.Close()
}

func segName(first uint64) string { return fmt.Sprintf("log-%016x", first) }
func ckptName(seq uint64) string  { return fmt.Sprintf("ckpt-%016x", seq) }

func createSegment(dir string, first uint64) (*os.File, error) {
	path := filepath.Join(dir, segName(first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var h [fileHeader]byte
	copy(h[:], segMagic)
	binary.LittleEndian.PutUint64(h[8:], first)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
