package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
)

// growStep is how far ahead of the written end the data file of a long
// chunk is reserved with fallocate, so a streaming chunk is allocated in a
// few large extents (see doc.go). A short chunk reserves less: reserveStep.
const growStep = 4 << 20

// reserveMin is the least a chunk reserves (one block): a chunk of a few
// hundred bytes holds 64 KiB while it is written, not growStep.
const reserveMin = BlockSize

// reserveStep is the granularity of the reservation for a chunk that must
// hold need bytes: the power of two from reserveMin up to growStep that
// is at least need. The space reserved past the written end is thus at
// most as large as the chunk already is (and at most growStep), so no
// client can make a chunkserver reserve much more than it was sent.
func reserveStep(need int64) int64 {
	step := int64(reserveMin)
	for step < need && step < growStep {
		step <<= 1
	}
	return step
}

// stageSize bounds the staging buffer used when the caller's bytes cannot
// go to disk directly (unaligned memory or offset).
const stageSize = 1 << 20

// zeroBlockSum is the checksum of a full block of zeros (holes, padding).
var zeroBlockSum = xxhash.Sum64(make([]byte, BlockSize))

// zeros is a read-only source of zero bytes for hashing holes.
var zeros = make([]byte, BlockSize)

// WriteAt writes p at off in chunk h. off+len(p) may exceed the chunk's
// length (up to the chunk size); bytes between the old length and off read
// as zeros. The write is not durable until Sync.
func (s *Store) WriteAt(h Handle, p []byte, off int64) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if off < 0 || int64(len(p)) > s.chunkSize || off > s.chunkSize-int64(len(p)) {
		return fmt.Errorf("write chunk %016x at %d, %d bytes: %w", uint64(h), off, len(p), ErrOutOfRange)
	}
	if len(p) == 0 {
		return nil // like pwrite: writing nothing does not extend the chunk
	}
	c.mu.Lock()
	err = s.writeLocked(c, p, off)
	bad := c.takeReport(err)
	c.mu.Unlock()
	if bad != nil {
		s.reportCorrupt(h, bad)
	}
	if err != nil {
		return fmt.Errorf("write chunk %016x at %d: %w", uint64(h), off, err)
	}
	return nil
}

// Append writes p at the chunk's end and returns the offset it was written
// at. If p does not fit in the chunk, nothing is written and the error is
// ErrChunkFull.
func (s *Store) Append(h Handle, p []byte) (int64, error) {
	c, err := s.lookup(h)
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	c.mu.Lock()
	off := c.length
	if int64(len(p)) > s.chunkSize-off {
		c.mu.Unlock()
		return 0, fmt.Errorf("append %d bytes to chunk %016x at %d: %w", len(p), uint64(h), off, ErrChunkFull)
	}
	err = s.writeLocked(c, p, off)
	bad := c.takeReport(err)
	c.mu.Unlock()
	if bad != nil {
		s.reportCorrupt(h, bad)
	}
	if err != nil {
		return 0, fmt.Errorf("append to chunk %016x at %d: %w", uint64(h), off, err)
	}
	return off, nil
}

// PadTo extends chunk h with zeros up to length (record append padding). It
// does nothing if the chunk is already at least that long.
func (s *Store) PadTo(h Handle, length int64) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("pad: %w", err)
	}
	if length < 0 || length > s.chunkSize {
		return fmt.Errorf("pad chunk %016x to %d: %w", uint64(h), length, ErrOutOfRange)
	}
	c.mu.Lock()
	err = s.writeLocked(c, nil, length)
	bad := c.takeReport(err)
	c.mu.Unlock()
	if bad != nil {
		s.reportCorrupt(h, bad)
	}
	if err != nil {
		return fmt.Errorf("pad chunk %016x to %d: %w", uint64(h), length, err)
	}
	return nil
}

// Sync makes chunk h's data and checksums durable (fdatasync of both files).
func (s *Store) Sync(h Handle) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	// Shared lock: fdatasync may run while reads go on; writes wait, so
	// everything acknowledged before Sync was called is covered.
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if c.broken != nil {
		return fmt.Errorf("sync: %w", c.broken)
	}
	if err := s.openFiles(c); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := datasync(c.data); err != nil {
		return fmt.Errorf("sync chunk %016x data: %w", uint64(h), ioError(err))
	}
	if err := datasync(c.meta); err != nil {
		return fmt.Errorf("sync chunk %016x checksums: %w", uint64(h), ioError(err))
	}
	if c.needDirSync.Load() {
		if err := s.dirFile.Sync(); err != nil {
			return fmt.Errorf("sync chunk %016x directory: %w", uint64(h), ioError(err))
		}
		c.needDirSync.Store(false)
	}
	return nil
}

// takeReport returns the block to report when err is a checksum error found
// during a write.
func (c *chunk) takeReport(err error) []int {
	if ce, ok := err.(*ChecksumError); ok && ce.Block >= 0 {
		return []int{ce.Block}
	}
	return nil
}

// writeLocked writes p at off (off+len(p) <= chunk size, checked by the
// caller), with zeros between the old length and off. len(p) == 0 with
// off > length is a pure extension (PadTo). c.mu is held exclusively.
//
// Order, so that a crash at any point leaves every block verifying or
// detectably corrupt, and an error leaves the chunk as it was:
//  1. compute the new checksums of every affected block (reading old bytes
//     only for blocks partly overwritten in the middle of the chunk);
//  2. reserve space (ENOSPC surfaces here, before anything changed);
//  3. write the data, sector-aligned, the partial last sector zero-padded;
//  4. write the affected entries of the .meta file;
//  5. update memory.
func (s *Store) writeLocked(c *chunk, p []byte, off int64) error {
	if err := c.usable(); err != nil {
		return err
	}
	if c.broken != nil {
		return c.broken
	}
	if err := s.openFiles(c); err != nil {
		return err
	}
	oldLen := c.length
	end := off + int64(len(p))
	newLen := max(oldLen, end)
	if len(p) == 0 && newLen == oldLen {
		return nil
	}
	if !c.tailOK {
		if err := s.loadTail(c); err != nil {
			// A corrupt last block only stops writes that need it.
			if end > alignDown(oldLen, BlockSize) || c.needRepair || !errors.Is(err, ErrChecksum) {
				return err
			}
		}
	}
	if c.needRepair {
		if err := s.repair(c); err != nil {
			return err
		}
	}
	if c.clean {
		// The header must say "dirty" before any data changes, so that a
		// crash from here on makes the next Open verify this chunk.
		if err := s.writeMeta(c, c.version, false); err != nil {
			return ioError(err)
		}
	}

	// 1. New checksums of blocks [bFirst, bLast]. A block partly
	// overwritten keeps some old bytes: refuse if they are known corrupt,
	// and note whether they must be read from disk.
	// The bytes that change are [min(off, oldLen), end): the write, and
	// the hole before it when it starts past the end. (A PadTo is a write
	// of nothing at the new length.)
	bFirst := int(min(off, oldLen) / BlockSize)
	bLast := int((end - 1) / BlockSize)
	needDisk := false
	for b := bFirst; b <= bLast; b++ {
		bs := int64(b) * BlockSize
		oldBe := max(min(bs+BlockSize, oldLen), bs)
		if oldBe > bs && (off > bs || end < oldBe) {
			if _, bad := c.corrupt[b]; bad {
				return &ChecksumError{Handle: c.h, Block: b}
			}
			if !(oldBe == oldLen && off >= oldLen && oldLen%BlockSize != 0) {
				needDisk = true
			}
		}
	}
	hs := hashState{newSums: make([]uint64, bLast-bFirst+1)}
	var hashDone chan struct{}
	if !needDisk && len(p) >= parallelHashMin {
		// Hash on another core while the data goes to disk: the hash
		// does not depend on the write, nor the write on the hash.
		hashDone = make(chan struct{})
		go func() {
			defer close(hashDone)
			hs.err = s.hashBlocks(c, p, off, oldLen, newLen, bFirst, &hs)
		}()
		defer func() { <-hashDone }()
	} else if err := s.hashBlocks(c, p, off, oldLen, newLen, bFirst, &hs); err != nil {
		return err
	}
	newSums := hs.newSums

	// New tail sector: the sector at alignDown(newLen).
	var newTail []byte
	tailChanged := false
	if s.align > 1 {
		ts := alignDown(newLen, s.align)
		if newLen != oldLen || (off < ts+s.align && end > ts) {
			tailChanged = true
			if c.tailSpare == nil {
				c.tailSpare = alignedAlloc(int(s.align))
			}
			newTail = c.tailSpare
			if ts == alignDown(oldLen, s.align) && oldLen%s.align != 0 {
				copy(newTail, c.tail)
			} else {
				clear(newTail)
			}
			lo, hi := max(off, ts), min(end, ts+s.align)
			if hi > lo {
				copy(newTail[lo-ts:hi-ts], p[lo-off:hi-off])
			}
			clear(newTail[newLen-ts:])
		}
	}

	// 2. Space.
	if len(p) > 0 {
		// Padding and holes stay sparse; only bytes written need room.
		if err := s.reserve(c, alignUp(end, s.align)); err != nil {
			return err
		}
	}

	// 3. Data.
	if len(p) > 0 {
		if err := s.writeData(c, p, off, oldLen); err != nil {
			if end > oldLen || off < alignUp(oldLen, s.align) {
				c.needRepair = true
				c.dirtyEnd = max(c.dirtyEnd, alignUp(end, s.align))
			}
			return ioError(err)
		}
	}
	if newLen > c.fileSize {
		// Pure extension past the file's end: make the file cover the
		// chunk so a sendfile of the whole range finds every byte.
		if size := alignUp(newLen, s.align); size > c.fileSize {
			// Padding seals the chunk (record append) and stays sparse:
			// give back the reservation past the file's end first, or
			// the extension would keep it as unwritten extents inside
			// the file, where only a hole punch could free it.
			s.releaseReservation(c)
			if err := c.data.Truncate(size); err != nil {
				return ioError(err)
			}
			c.fileSize = size
		}
	}

	if hashDone != nil {
		<-hashDone
		hashDone = closedChan
		if hs.err != nil {
			return hs.err
		}
	}

	// 4. Entries.
	if s.hooks.entryWrite != nil {
		if err := s.hooks.entryWrite(c); err != nil {
			c.needRepair = true
			return err
		}
	}
	ents := make([]byte, entrySize*len(newSums))
	for i, sum := range newSums {
		b := bFirst + i
		encodeEntry(ents[i*entrySize:], b, sum, uint32(blockLen(b, newLen)))
	}
	if _, err := c.meta.WriteAt(ents, headerSize+int64(bFirst)*entrySize); err != nil {
		c.needRepair = true
		return ioError(err)
	}

	// 5. Memory.
	if nb := bLast + 1; nb > len(c.sums) {
		c.sums = append(c.sums, make([]uint64, nb-len(c.sums))...)
	}
	copy(c.sums[bFirst:], newSums)
	for b := bFirst; b <= bLast; b++ {
		delete(c.corrupt, b)
	}
	c.length = newLen
	if tailChanged {
		c.tail, c.tailSpare = newTail, c.tail
	}
	if newLen%BlockSize == 0 {
		c.tailDig.Reset()
	} else if hs.digOK {
		c.tailDig = hs.dig
	} else {
		// The last block was not among the affected ones: unchanged.
	}
	c.writeGen++
	c.lastWrite = time.Now()
	return nil
}

// parallelHashMin is the write size from which hashing runs concurrently
// with the data write.
const parallelHashMin = 64 << 10

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// hashState is the result of hashBlocks.
type hashState struct {
	newSums []uint64      // checksums of blocks bFirst...
	dig     xxhash.Digest // running digest of the new partial last block
	digOK   bool
	err     error
}

// hashBlocks computes the checksums, after writing p at off, of the blocks
// from bFirst to the one holding newLen-1. It reads c but changes nothing
// but hs (it may run concurrently with the data write).
func (s *Store) hashBlocks(c *chunk, p []byte, off, oldLen, newLen int64, bFirst int, hs *hashState) error {
	end := off + int64(len(p))
	var scratch *Buffer
	defer func() { PutBuffer(scratch) }()
	for i := range hs.newSums {
		b := bFirst + i
		bs := int64(b) * BlockSize
		be := min(bs+BlockSize, newLen)
		oldBe := max(min(bs+BlockSize, oldLen), bs) // old content is [bs, oldBe)
		needOld := oldBe > bs && (off > bs || end < oldBe)
		isLast := be == newLen && newLen%BlockSize != 0
		var d xxhash.Digest
		switch {
		case !needOld && !isLast && off <= bs && end >= be:
			// Fully covered by p.
			hs.newSums[i] = xxhash.Sum64(p[bs-off : be-off])
			continue
		case !needOld && !isLast && (off >= be || end <= bs):
			// A whole block of hole or padding.
			hs.newSums[i] = zeroBlockSum
			continue
		case !needOld:
			// Zeros (hole) before p, p's part, zeros after (padding).
			d.Reset()
			hashRegion(&d, p, off, end, bs, be)
		case oldBe == oldLen && off >= oldLen && oldLen%BlockSize != 0:
			// Extending the partial last block: continue its digest.
			d = c.tailDig
			hashRegion(&d, p, off, end, oldLen, be)
		default:
			// Partly overwritten inside existing data: read the block,
			// check it (never launder corruption into a fresh checksum),
			// merge and hash.
			if scratch == nil {
				scratch = GetBuffer(BlockSize)
			}
			blk := scratch.B
			if err := s.readAligned(c, blk[:alignUp(oldBe-bs, s.align)], bs); err != nil {
				return fmt.Errorf("read block %d: %w", b, err)
			}
			if xxhash.Sum64(blk[:oldBe-bs]) != c.sums[b] {
				return s.markCorrupt(c, b)
			}
			clear(blk[oldBe-bs:])
			lo, hi := max(off, bs), min(end, be)
			if hi > lo {
				copy(blk[lo-bs:hi-bs], p[lo-off:hi-off])
			}
			d.Reset()
			d.Write(blk[:be-bs])
		}
		hs.newSums[i] = d.Sum64()
		if isLast {
			hs.dig, hs.digOK = d, true
		}
	}
	return nil
}

// hashRegion feeds d the content of [lo, hi) where bytes in [off, end) come
// from p and all others are zeros.
func hashRegion(d *xxhash.Digest, p []byte, off, end, lo, hi int64) {
	for pos := lo; pos < hi; {
		switch {
		case pos < off:
			n := min(off, hi) - pos
			writeZeros(d, n)
			pos += n
		case pos < end:
			n := min(end, hi) - pos
			d.Write(p[pos-off : pos-off+n])
			pos += n
		default:
			writeZeros(d, hi-pos)
			pos = hi
		}
	}
}

func writeZeros(d *xxhash.Digest, n int64) {
	for n > 0 {
		k := min(n, int64(len(zeros)))
		d.Write(zeros[:k])
		n -= k
	}
}

// releaseReservation gives back the space reserved past the data file's
// end (fallocate with FALLOC_FL_KEEP_SIZE puts it there). Truncating the
// file to its own size frees blocks past its end and changes no byte of
// it, so a crash during it cannot lose or tear anything; a hole punch past
// the end would not do (ext4 ignores punches beyond the size). Best
// effort: a failure only keeps the space. c.mu is held exclusively.
func (s *Store) releaseReservation(c *chunk) {
	if c.allocated <= c.fileSize || c.data == nil {
		c.allocated = min(c.allocated, c.fileSize)
		return
	}
	// The size as the file system has it: should a failed write have
	// left the file longer than fileSize, those bytes stay too.
	st, err := c.data.Stat()
	if err == nil {
		err = c.data.Truncate(st.Size())
	}
	if err != nil {
		s.log.Warn("store: could not give back reserved space", "chunk", c.h, "err", err)
		return
	}
	// The next write reserves again from 0 (cheap where allocated), so
	// holes inside the file are covered before it writes.
	c.allocated = 0
}

// reserve makes sure the data file has space for [0, need), growing the
// reservation in reserveStep steps (see doc.go).
func (s *Store) reserve(c *chunk, need int64) error {
	if need <= c.allocated || s.noPrealloc.Load() {
		return nil
	}
	target := min(alignUp(need, reserveStep(need)), alignUp(s.chunkSize, s.align))
	target = max(target, need)
	prealloc := func() error {
		if s.hooks.prealloc != nil {
			if err := s.hooks.prealloc(c); err != nil {
				return err
			}
		}
		return preallocate(c.data, c.allocated, target-c.allocated)
	}
	err := prealloc()
	if err != nil && target > need {
		// Not enough room for the step: try exactly what this write needs.
		target = need
		err = prealloc()
	}
	switch {
	case err == nil:
		c.allocated = target
		return nil
	case errors.Is(err, errors.ErrUnsupported):
		if !s.noPrealloc.Swap(true) {
			s.log.Info("store: fallocate unsupported, not preallocating", "dir", s.dir)
		}
		return nil
	default:
		return ioError(err)
	}
}

// writeData writes p at off to the data file, sector-aligned: a partial
// first or last sector is completed with the bytes it already holds (from
// the tail sector in memory, from disk for sectors inside the chunk) or
// zeros past the old length. Aligned caller memory at an aligned offset is
// written without copying.
func (s *Store) writeData(c *chunk, p []byte, off, oldLen int64) error {
	if s.hooks.dataWrite != nil {
		if err := s.hooks.dataWrite(c, off, len(p)); err != nil {
			return err
		}
	}
	A := s.align
	end := off + int64(len(p))
	if A == 1 {
		_, err := c.data.WriteAt(p, off)
		if err == nil && end > c.fileSize {
			c.fileSize = end
		}
		return err
	}
	ws, we := alignDown(off, A), alignUp(end, A)
	// Old content of the first and last sectors, fetched before writing.
	var head, last []byte
	if off != ws {
		sec := GetBuffer(int(A))
		defer PutBuffer(sec)
		if err := s.oldSector(c, sec.B, ws, oldLen); err != nil {
			return err
		}
		head = sec.B
	}
	if end != we {
		ls := we - A
		if head != nil && ls == ws {
			last = head
		} else {
			sec := GetBuffer(int(A))
			defer PutBuffer(sec)
			if err := s.oldSector(c, sec.B, ls, oldLen); err != nil {
				return err
			}
			last = sec.B
		}
	}
	if head == nil && isAligned(p, s.memAlign) {
		// Zero-copy: whole sectors straight from p, then the last partial
		// sector through a sector buffer.
		full := alignDown(int64(len(p)), A)
		if full > 0 {
			if _, err := c.data.WriteAt(p[:full], off); err != nil {
				return err
			}
		}
		if last != nil {
			copy(last, p[full:])
			if _, err := c.data.WriteAt(last, off+full); err != nil {
				return err
			}
		}
	} else {
		stage := GetBuffer(int(min(we-ws, stageSize)))
		defer PutBuffer(stage)
		for pos := ws; pos < we; {
			n := min(we-pos, int64(len(stage.B)))
			buf := stage.B[:n]
			if pos == ws && head != nil {
				copy(buf, head)
			}
			if pos+n == we && last != nil {
				copy(buf[n-A:], last)
			}
			lo, hi := max(off, pos), min(end, pos+n)
			copy(buf[lo-pos:hi-pos], p[lo-off:hi-off])
			if _, err := c.data.WriteAt(buf, pos); err != nil {
				return err
			}
			pos += n
		}
	}
	if we > c.fileSize {
		c.fileSize = we
	}
	return nil
}

// oldSector fills sec with the sector at so as the chunk of length oldLen
// has it: zeros past oldLen, the tail sector from memory, others from disk.
func (s *Store) oldSector(c *chunk, sec []byte, so, oldLen int64) error {
	switch {
	case so >= oldLen:
		clear(sec)
	case so+s.align > oldLen:
		copy(sec, c.tail)
	default:
		if err := s.readAligned(c, sec, so); err != nil {
			return err
		}
	}
	return nil
}

// repair restores, after a failed write, the invariant that the data file
// holds zeros past the chunk's length.
func (s *Store) repair(c *chunk) error {
	A := s.align
	if A > 1 && c.length%A != 0 {
		sec := GetBuffer(int(A))
		defer PutBuffer(sec)
		copy(sec.B, c.tail)
		if _, err := c.data.WriteAt(sec.B, alignDown(c.length, A)); err != nil {
			return ioError(err)
		}
	}
	from := alignUp(c.length, A)
	if c.dirtyEnd > from {
		if err := zeroRange(c.data, from, c.dirtyEnd-from); err != nil {
			if err := c.data.Truncate(from); err != nil {
				return ioError(err)
			}
			c.fileSize = from
			c.allocated = 0
		}
	}
	// Rewrite every entry from memory: a failed entry write may have left
	// some of them ahead of the data.
	ents := encodeMeta(metaHeader{}, c.length, c.sums, c.corrupt, 0)[headerSize:]
	if _, err := c.meta.WriteAt(ents, headerSize); err != nil {
		return ioError(err)
	}
	if rest := int64(blocksOf(c.length)); rest < s.chunkSize/BlockSize {
		z := make([]byte, entrySize*(s.chunkSize/BlockSize-rest))
		if _, err := c.meta.WriteAt(z, headerSize+rest*entrySize); err != nil {
			return ioError(err)
		}
	}
	c.needRepair = false
	c.dirtyEnd = 0
	return nil
}
