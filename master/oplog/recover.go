package oplog

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// errFrame marks a frame that cannot be read (short, bad checksum, bad length).
var errFrame = errors.New("bad frame")

// frameReader reads frames from r, tracking the offset after the last good one.
type frameReader struct {
	r      *bufio.Reader
	max    int
	off    int64 // offset after the last frame read successfully
	buf    []byte
	header [frameHeader]byte
}

// next returns the next frame; io.EOF at a clean end, errFrame on damage.
func (fr *frameReader) next() (uint64, []byte, error) {
	n, err := io.ReadFull(fr.r, fr.header[:])
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil || n != frameHeader {
		return 0, nil, errFrame
	}
	length := int(binary.LittleEndian.Uint32(fr.header[0:]))
	sum := binary.LittleEndian.Uint32(fr.header[4:])
	seq := binary.LittleEndian.Uint64(fr.header[8:])
	if length > fr.max {
		return 0, nil, errFrame
	}
	if cap(fr.buf) < length {
		fr.buf = make([]byte, length)
	}
	rec := fr.buf[:length]
	if _, err := io.ReadFull(fr.r, rec); err != nil {
		return 0, nil, errFrame
	}
	crc := crc32.Update(0, castagnoli, fr.header[8:16])
	crc = crc32.Update(crc, castagnoli, rec)
	if crc != sum {
		return 0, nil, errFrame
	}
	fr.off += int64(frameHeader + length)
	return seq, rec, nil
}

func readFileHeader(r io.Reader, magic string) (uint64, error) {
	var h [fileHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, errFrame
	}
	if string(h[:8]) != magic {
		return 0, errFrame
	}
	return binary.LittleEndian.Uint64(h[8:]), nil
}

// listFiles returns the sequence numbers of files named prefix-%016x, sorted.
func listFiles(dir, prefix string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			continue
		}
		rest, ok := strings.CutPrefix(name, prefix+"-")
		if !ok || len(rest) != 16 {
			continue
		}
		v, err := strconv.ParseUint(rest, 16, 64)
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// loadCheckpoint validates checkpoint seq fully (trailer included) before
// feeding any record to fn, so a damaged checkpoint leaves no partial state.
func (l *Log) loadCheckpoint(seq uint64, fn func([]byte) error) error {
	path := filepath.Join(l.dir, ckptName(seq))
	if err := l.scanCheckpoint(path, seq, nil); err != nil {
		return err
	}
	return l.scanCheckpoint(path, seq, fn)
}

func (l *Log) scanCheckpoint(path string, seq uint64, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	s, err := readFileHeader(br, ckptMagic)
	if err != nil || s != seq {
		return fmt.Errorf("checkpoint %s: bad header: %w", path, ErrCorrupt)
	}
	fr := &frameReader{r: br, max: l.opts.MaxRecordBytes}
	var n uint64
	for {
		fseq, rec, err := fr.next()
		if err != nil {
			return fmt.Errorf("checkpoint %s: no valid trailer after %d records: %w", path, n, ErrCorrupt)
		}
		if fseq == trailerSeq {
			if len(rec) != 8 || binary.LittleEndian.Uint64(rec) != n {
				return fmt.Errorf("checkpoint %s: bad trailer: %w", path, ErrCorrupt)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("checkpoint %s: data after trailer: %w", path, ErrCorrupt)
			}
			return nil
		}
		n++
		if fseq != n {
			return fmt.Errorf("checkpoint %s: record %d numbered %d: %w", path, n, fseq, ErrCorrupt)
		}
		if fn != nil {
			if err := fn(rec); err != nil {
				return fmt.Errorf("checkpoint %s record %d: %w", path, n, err)
			}
		}
	}
}

func (l *Log) recover(r Replayer) error {
	// Leftovers of checkpoints being written at a crash.
	if ents, err := os.ReadDir(l.dir); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tmp") {
				os.Remove(filepath.Join(l.dir, e.Name()))
			}
		}
	}
	ckpts, err := listFiles(l.dir, "ckpt")
	if err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	base := uint64(0)
	for i := len(ckpts) - 1; i >= 0; i-- {
		err := l.loadCheckpoint(ckpts[i], r.Checkpoint)
		if err == nil {
			base = ckpts[i]
			if i > 0 {
				l.prevCkpt = ckpts[i-1]
			}
			break
		}
		if !errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("oplog: %w", err)
		}
		l.log.Warn("oplog: checkpoint invalid, falling back to an older one", "seq", ckpts[i], "err", err)
	}
	// Without a valid checkpoint, replay starts from record 1; the
	// contiguity check below fails if the segments it needs are gone.
	l.lastCkpt = base

	segs, err := listFiles(l.dir, "log")
	if err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	// Segments needed: those holding records after base. A segment starting
	// at or before base may still hold records after base only if it is the
	// one base falls in (never: checkpoints roll), so skip start <= base.
	var need []uint64
	for _, s := range segs {
		if s > base {
			need = append(need, s)
		}
	}
	l.seq = base
	for i, first := range need {
		last := i == len(need)-1
		if first != l.seq+1 {
			return fmt.Errorf("oplog: segment %s starts at %d, expected %d: %w", segName(first), first, l.seq+1, ErrCorrupt)
		}
		if err := l.replaySegment(first, last, r.Record); err != nil {
			return err
		}
	}
	if len(need) == 0 {
		f, err := createSegment(l.dir, l.seq+1)
		if err != nil {
			return fmt.Errorf("oplog: %w", err)
		}
		l.file = f
	}
	l.durable = l.seq
	return nil
}

func (l *Log) replaySegment(first uint64, last bool, fn func(uint64, []byte) error) error {
	path := filepath.Join(l.dir, segName(first))
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	h, herr := readFileHeader(br, segMagic)
	fr := &frameReader{r: br, max: l.opts.MaxRecordBytes, off: fileHeader}
	var tornAt int64 = -1
	if herr != nil || h != first {
		f.Close()
		if !last {
			return fmt.Errorf("oplog: segment %s: bad header: %w", path, ErrCorrupt)
		}
		// Created at a roll and torn before its header was durable.
		l.log.Warn("oplog: last segment has a torn header; recreating it", "segment", path)
		nf, err := createSegment(l.dir, first)
		if err != nil {
			return fmt.Errorf("oplog: %w", err)
		}
		l.file = nf
		return nil
	}
	for {
		seq, rec, err := fr.next()
		if err == io.EOF {
			break
		}
		if err == nil && seq != l.seq+1 {
			err = errFrame
		}
		if err != nil {
			if !last {
				f.Close()
				return fmt.Errorf("oplog: segment %s: damaged record after seq %d at offset %d: %w", path, l.seq, fr.off, ErrCorrupt)
			}
			tornAt = fr.off
			break
		}
		if fn != nil {
			if err := fn(seq, rec); err != nil {
				f.Close()
				return fmt.Errorf("oplog: replay record %d: %w", seq, err)
			}
		}
		l.seq = seq
	}
	f.Close()
	if !last {
		return nil
	}
	wf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("oplog: %w", err)
	}
	if tornAt >= 0 {
		st, _ := wf.Stat()
		l.log.Warn("oplog: dropping torn tail", "segment", path, "offset", tornAt, "bytes", st.Size()-tornAt, "last_seq", l.seq)
		if err := wf.Truncate(tornAt); err != nil {
			wf.Close()
			return fmt.Errorf("oplog: truncate torn tail: %w", err)
		}
		if err := wf.Sync(); err != nil {
			wf.Close()
			return fmt.Errorf("oplog: %w", err)
		}
	}
	l.file = wf
	return nil
}
