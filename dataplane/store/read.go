package store

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// directReadMax bounds one read straight into the caller's buffer, so a
// huge ReadAt verifies as it goes rather than after one giant read.
const directReadMax = 4 << 20

// ReadAt reads len(p) bytes of chunk h from off into p, verifying every
// block it returns. It returns n < len(p) with io.EOF at the chunk's end.
// A block that does not verify ends the read before it with a
// *ChecksumError (errors.Is(err, ErrChecksum)); the bytes before it are
// good.
func (s *Store) ReadAt(h Handle, p []byte, off int64) (int, error) {
	c, err := s.lookup(h)
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	if off < 0 {
		return 0, fmt.Errorf("read chunk %016x at %d: %w", uint64(h), off, ErrOutOfRange)
	}
	ra, drop := s.takeReadahead(c, off)
	for _, d := range drop {
		s.releaseReadahead(d)
	}
	if ra != nil {
		<-ra.done // never wait for it holding c.mu: it needs c.mu itself
	}
	c.mu.RLock()
	gen := c.writeGen
	var n, bad int
	served := false
	if ra != nil {
		n, bad, err, served = s.serveReadahead(c, ra, p, off)
	}
	if !served {
		n, bad, err = s.readLocked(c, p, off)
	}
	c.mu.RUnlock()
	if ra != nil {
		s.releaseReadahead(ra)
	}
	if n > 0 && bad < 0 && (err == nil || err == io.EOF) && !s.readsInPlace(p, off) {
		s.afterRead(c, off, off+int64(n), len(p))
	}
	if bad >= 0 {
		s.noteCorrupt(c, bad, gen)
		s.reportCorrupt(h, []int{bad})
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("read chunk %016x at %d: %w", uint64(h), off, err)
	}
	return n, err
}

// readsInPlace reports whether a read of p at off goes straight into p
// with large reads (aligned, block-aligned, at least streamReadMin): those
// stream through the page cache with the kernel reading ahead (see
// readStreaming), so the store's own readahead would only add a copy of
// every byte (memmove was a third of the CPU of a sequential 1 MiB reader
// with it).
func (s *Store) readsInPlace(p []byte, off int64) bool {
	return len(p) >= streamReadMin && off%BlockSize == 0 && isAligned(p, s.memAlign)
}

// readLocked is ReadAt under c.mu (shared). bad is a newly found corrupt
// block to report, or -1.
func (s *Store) readLocked(c *chunk, p []byte, off int64) (n int, bad int, err error) {
	bad = -1
	if err := c.usable(); err != nil {
		return 0, bad, err
	}
	if c.broken != nil {
		return 0, bad, c.broken
	}
	length := c.length
	if off >= length {
		if len(p) == 0 {
			return 0, bad, nil
		}
		return 0, bad, io.EOF
	}
	if err := s.openFiles(c); err != nil {
		return 0, bad, err
	}
	reqEnd := min(off+int64(len(p)), length)
	var stage *Buffer
	defer func() { PutBuffer(stage) }()
	pos := off
	for pos < reqEnd {
		bs := alignDown(pos, BlockSize)
		// Whole blocks, wholly wanted, at aligned memory: read in place.
		if pos == bs && isAligned(p[pos-off:], s.memAlign) {
			e := bs
			for e+BlockSize <= reqEnd && e-bs < directReadMax {
				e += BlockSize
			}
			if e == bs && reqEnd == length && length%s.align == 0 {
				e = reqEnd // the chunk's last, partial block ends on a sector
			}
			if e > bs {
				b, err := s.readVerify(c, p[bs-off:e-off], bs, e)
				if err != nil {
					return int(pos - off), bad, ioError(err)
				}
				if b >= 0 {
					bad = b
					return int(int64(b)*BlockSize - off), bad, &ChecksumError{Handle: c.h, Block: b}
				}
				pos = e
				continue
			}
		}
		// Otherwise through a staging buffer: whole blocks around pos.
		if stage == nil {
			stage = GetBuffer(int(min(stageSize, alignUp(reqEnd-bs, BlockSize))))
		}
		e := min(bs+int64(len(stage.B)), alignUp(reqEnd, BlockSize), length)
		buf := stage.B[:alignUp(e-bs, s.align)]
		b, err := s.readVerify(c, buf, bs, e)
		if err != nil {
			return int(pos - off), bad, ioError(err)
		}
		if b >= 0 {
			bs2 := int64(b) * BlockSize
			if bs2 > pos {
				copy(p[pos-off:bs2-off], buf[pos-bs:bs2-bs])
			}
			bad = b
			return int(max(bs2, pos) - off), bad, &ChecksumError{Handle: c.h, Block: b}
		}
		hi := min(e, reqEnd)
		copy(p[pos-off:hi-off], buf[pos-bs:hi-bs])
		pos = hi
	}
	n = int(reqEnd - off)
	if n < len(p) {
		return n, bad, io.EOF
	}
	return n, bad, nil
}

// streamReadMin is the size from which readVerify streams through the
// page cache (see readStreaming); streamAhead is how far ahead of such a
// read the kernel is asked to read.
const (
	streamReadMin = 512 << 10
	streamAhead   = 4 << 20
)

// readVerify reads the chunk's bytes [start, end) (start block-aligned, end
// a block boundary or the chunk's length) into buf, which has room for them
// rounded up to a sector, and verifies every block. It returns the first
// block that does not verify, or -1.
func (s *Store) readVerify(c *chunk, buf []byte, start, end int64) (int, error) {
	if end-start >= streamReadMin {
		return s.readStreaming(c, buf, start, end)
	}
	return s.readVerifyPiece(c, buf[:alignUp(end-start, s.align)], start, end)
}

// readStreaming is readVerify for large reads: through the page cache, with
// the next streamAhead bytes requested from the kernel before verifying, and
// the pages read dropped after, so that the disk works on the next window
// while this one is hashed and a stream does not fill the cache. With
// O_DIRECT the disk sat idle during the hash (one xxhash64 pass over data
// just DMA'd, ~16% of the time at 2 GB/s); BenchmarkReadRatio went from
// 0.82-0.90 to 0.85-1.0 of raw O_DIRECT. Splitting the O_DIRECT read into
// pieces hashed while the next was read was worse (0.65-0.8: smaller
// requests are slower on this virtio disk), and so was an O_DIRECT
// readahead into a side buffer (0.66-0.81: a copy plus a goroutine handoff
// per window). The store's O_DIRECT writes keep the page cache coherent,
// and a read holds the chunk lock, so no write overlaps it.
func (s *Store) readStreaming(c *chunk, buf []byte, start, end int64) (int, error) {
	ref, err := s.readFile(c)
	if err != nil {
		return -1, err
	}
	defer ref.release()
	f := ref.f
	willNeed(f, end, streamAhead)
	n := int(end - start)
	for done := 0; done < n; {
		r, err := f.ReadAt(buf[done:n], start+int64(done))
		done += r
		if err == io.EOF || (err == nil && r == 0) {
			// The file ends inside a sector the chunk covers: a
			// truncated file reads as zeros, like readAligned.
			clear(buf[done:n])
			break
		}
		if err != nil {
			return -1, err
		}
	}
	b, ok := verifyBlocks(c, buf[:n], start, end)
	dontNeed(f, start, end-start)
	if !ok {
		return b, nil
	}
	return -1, nil
}

// readVerifyPiece reads buf from start and verifies the blocks of
// [start, end).
func (s *Store) readVerifyPiece(c *chunk, buf []byte, start, end int64) (int, error) {
	if err := s.readAligned(c, buf, start); err != nil {
		return -1, err
	}
	if b, ok := verifyBlocks(c, buf[:end-start], start, end); !ok {
		return b, nil
	}
	return -1, nil
}

// verifyBlocks checks the blocks in buf, which holds the chunk's bytes
// [start, end) (start block-aligned; end a block boundary or the chunk's
// length). It returns the first bad block.
func verifyBlocks(c *chunk, buf []byte, start, end int64) (int, bool) {
	for bs := start; bs < end; bs += BlockSize {
		b := int(bs / BlockSize)
		be := min(bs+BlockSize, end)
		if c.corrupt[b] || xxhash.Sum64(buf[bs-start:be-start]) != c.sums[b] {
			return b, false
		}
	}
	return 0, true
}

// noteCorrupt records block b, found corrupt by a reader that saw write
// generation gen, unless a write changed the chunk since.
func (s *Store) noteCorrupt(c *chunk, b int, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.usable() == nil && c.writeGen == gen {
		s.markCorrupt(c, b)
	}
}

// Range is a block-aligned part of a chunk, prepared for sending without
// copying: the caller sends bytes [Offset, Offset+Length-len(Tail)) of File
// (e.g. with sendfile), then Tail, along with Sums so that the receiver
// verifies every block. Release it when done.
type Range struct {
	// Offset is the requested offset rounded down to BlockSize.
	Offset int64
	// Length is the number of bytes covered: up to the end of the block
	// holding the last requested byte, capped at the chunk's length.
	Length int64
	// Sums holds one xxhash64 per covered block (the last one over a
	// partial block when the range ends at the chunk's length).
	Sums []uint64
	// File is the data file (read-only, buffered); valid until Release.
	File *os.File
	// Tail holds the bytes of the last block when it is partial: a snapshot
	// taken under the chunk lock, so a concurrent append cannot make it
	// disagree with its checksum. Send it from memory. Empty when the range
	// ends on a block boundary.
	Tail []byte

	ref      *sharedFile
	tailBuf  *Buffer
	released atomic.Bool
}

// Release gives back the range's file reference and tail buffer. It is safe
// to call more than once.
func (r *Range) Release() {
	if r == nil || r.released.Swap(true) {
		return
	}
	if r.ref != nil {
		r.ref.release()
	}
	PutBuffer(r.tailBuf)
	r.Tail = nil
	r.File = nil
}

// OpenRange prepares bytes [off, off+n) of chunk h for zero-copy sending,
// widened to whole blocks (see Range). off past the chunk's length gives
// io.EOF; n is capped at the length. The data is not verified here: the
// receiver verifies it against Sums (and the scrubber verifies idle chunks).
func (s *Store) OpenRange(h Handle, off, n int64) (*Range, error) {
	c, err := s.lookup(h)
	if err != nil {
		return nil, fmt.Errorf("open range: %w", err)
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("open range of chunk %016x at %d, %d bytes: %w", uint64(h), off, n, ErrOutOfRange)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return nil, fmt.Errorf("open range: %w", err)
	}
	if c.broken != nil {
		return nil, fmt.Errorf("open range: %w", c.broken)
	}
	if off >= c.length && n > 0 {
		return nil, io.EOF
	}
	r := &Range{Offset: alignDown(off, BlockSize)}
	end := min(off+n, c.length)
	if end <= off {
		return r, nil
	}
	stop := min(alignUp(end, BlockSize), c.length)
	r.Length = stop - r.Offset
	first, last := int(r.Offset/BlockSize), int((stop-1)/BlockSize)
	r.Sums = append([]uint64(nil), c.sums[first:last+1]...)
	if err := s.openFiles(c); err != nil {
		return nil, fmt.Errorf("open range: %w", err)
	}
	if stop%BlockSize != 0 {
		ls := alignDown(stop, BlockSize)
		r.tailBuf = GetBuffer(BlockSize)
		if err := s.readAligned(c, r.tailBuf.B[:alignUp(stop-ls, s.align)], ls); err != nil {
			PutBuffer(r.tailBuf)
			return nil, fmt.Errorf("open range of chunk %016x: %w", uint64(h), ioError(err))
		}
		r.Tail = r.tailBuf.B[:stop-ls]
	}
	if r.ref, err = s.readFile(c); err != nil {
		PutBuffer(r.tailBuf)
		return nil, fmt.Errorf("open range of chunk %016x: %w", uint64(h), err)
	}
	r.File = r.ref.f
	return r, nil
}
