package oplog

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

// Checkpoint is a checkpoint being written. Obtain one with StartCheckpoint
// while the caller's state cannot change (so that the state it then writes
// is exactly the state after record Seq), add the state's records, then
// Commit or Abort.
type Checkpoint struct {
	l     *Log
	Seq   uint64 // the checkpoint holds the state after this record
	roll  *batch
	f     *os.File
	w     *bufio.Writer
	n     uint64
	tmp   string
	err   error
	ended bool
}

// StartCheckpoint rolls the log: records appended from now on go to a new
// segment. The caller must hold off its own mutations (and their Appends)
// between taking the snapshot it will write and this call.
func (l *Log) StartCheckpoint() (*Checkpoint, error) {
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return nil, err
	}
	if l.ckptBusy {
		l.mu.Unlock()
		return nil, ErrCheckpointBusy
	}
	l.ckptBusy = true
	seq := l.seq
	b := l.cur
	b.rollTo = seq + 1
	// Later appends must land in the next segment: seal this batch (the
	// flusher writes sealed batches first, in order) and start a new one.
	l.sealed = append(l.sealed, b)
	l.cur = newBatch()
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	tmp := filepath.Join(l.dir, ckptName(seq)+".tmp")
	c := &Checkpoint{l: l, Seq: seq, roll: b, tmp: tmp}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		c.Abort()
		return nil, fmt.Errorf("oplog checkpoint: %w", err)
	}
	c.f = f
	c.w = bufio.NewWriterSize(f, 1<<20)
	var h [fileHeader]byte
	copy(h[:], ckptMagic)
	binary.LittleEndian.PutUint64(h[8:], seq)
	_, c.err = c.w.Write(h[:])
	return c, nil
}

// Add appends one state record to the checkpoint.
func (c *Checkpoint) Add(rec []byte) error {
	if c.err != nil {
		return c.err
	}
	if len(rec) > c.l.opts.MaxRecordBytes {
		c.err = fmt.Errorf("checkpoint record of %d bytes: %w", len(rec), ErrTooLarge)
		return c.err
	}
	c.n++
	_, c.err = c.w.Write(appendFrame(nil, c.n, rec))
	return c.err
}

// Commit makes the checkpoint durable and current, then removes the files no
// longer needed (all but this and the previous checkpoint and their log).
func (c *Checkpoint) Commit() error {
	if c.ended {
		return fmt.Errorf("oplog checkpoint: already ended")
	}
	if err := c.commit(); err != nil {
		c.Abort()
		return fmt.Errorf("oplog checkpoint %d: %w", c.Seq, err)
	}
	return nil
}

func (c *Checkpoint) commit() error {
	if c.err != nil {
		return c.err
	}
	var cnt [8]byte
	binary.LittleEndian.PutUint64(cnt[:], c.n)
	if _, err := c.w.Write(appendFrame(nil, trailerSeq, cnt[:])); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	if err := c.f.Sync(); err != nil {
		return err
	}
	if err := c.f.Close(); err != nil {
		return err
	}
	c.f = nil
	// Every record <= Seq must be durable before the checkpoint replaces them.
	<-c.roll.done
	if c.roll.err != nil {
		return c.roll.err
	}
	dir := c.l.dir
	if err := os.Rename(c.tmp, filepath.Join(dir, ckptName(c.Seq))); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	c.ended = true
	l := c.l
	l.mu.Lock()
	l.ckptBusy = false
	keep := l.lastCkpt // becomes the previous checkpoint
	l.prevCkpt, l.lastCkpt = keep, c.Seq
	l.mu.Unlock()
	// Keep checkpoint `keep` and the segments after it (fallback); drop older.
	if ckpts, err := listFiles(dir, "ckpt"); err == nil {
		for _, s := range ckpts {
			if s < keep {
				os.Remove(filepath.Join(dir, ckptName(s)))
			}
		}
	}
	if segs, err := listFiles(dir, "log"); err == nil {
		for _, s := range segs {
			if s <= keep {
				os.Remove(filepath.Join(dir, segName(s)))
			}
		}
	}
	return nil
}

// Abort discards the checkpoint (the log keeps everything).
func (c *Checkpoint) Abort() {
	if c.ended {
		return
	}
	c.ended = true
	if c.f != nil {
		c.f.Close()
	}
	os.Remove(c.tmp)
	c.l.mu.Lock()
	c.l.ckptBusy = false
	c.l.mu.Unlock()
}
