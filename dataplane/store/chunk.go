package store

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// chunk is one chunk's in-memory state. Writers hold mu exclusively; reads
// hold it shared, so a read never sees a block between its data write and
// its checksum update.
type chunk struct {
	h  Handle
	mu sync.RWMutex

	// Guarded by mu.
	version Version
	length  int64
	sums    []uint64     // one per block of [0, length)
	corrupt map[int]bool // blocks known not to verify; true: entry unreadable (sum unknown)
	broken  error        // metadata unreadable: only Info, List and Delete work
	clean   bool         // the header on disk says clean (see doc.go)
	closed  bool
	deleted bool

	// The chunk's files, opened lazily (openFiles, under fmu, by holders of
	// mu shared or exclusive) and closed only under mu exclusive (when the
	// chunk goes idle, is deleted or the store closes), so that a store
	// with many chunks keeps descriptors only for the active ones.
	data *os.File // chunk data, O_DIRECT unless the store fell back
	meta *os.File // .meta, buffered, entries updated in place

	// Tail state: the partial last block and sector, kept so that appends
	// and writes never read back from disk. Valid when tailOK.
	tailOK bool
	tail   []byte // the sector at alignDown(length): bytes up to length, zeros after
	// tailSpare is the next write's scratch for the new tail sector
	// (swapped with tail), so writes allocate nothing for it.
	tailSpare []byte
	tailDig   xxhash.Digest // digest of the partial last block [lastBlockStart, length)

	// needDirSync: the chunk's files were created and their directory
	// entries are not yet known durable; the next Sync fsyncs the directory.
	needDirSync atomic.Bool

	fileSize   int64 // size of the data file as this process made it
	allocated  int64 // data file bytes reserved with fallocate, from 0
	needRepair bool  // a failed write may have left bytes past length on disk
	dirtyEnd   int64 // ... up to here

	writeGen   uint64    // incremented by every successful write
	lastWrite  time.Time // of the last successful write
	scrubGen   uint64    // writeGen when the scrubber last verified the chunk
	scrubbedAt time.Time // zero: never

	// rfile is a buffered read-only descriptor for Range.File, shared by
	// ranges through reference counting. Guarded by fmu, which also
	// serialises the lazy opening of data and meta.
	fmu   sync.Mutex
	rfile *sharedFile
}

// sharedFile is an *os.File closed when its last reference is dropped.
type sharedFile struct {
	f    *os.File
	refs atomic.Int32
}

func (sf *sharedFile) release() {
	if sf.refs.Add(-1) == 0 {
		sf.f.Close()
	}
}

func (c *chunk) info() ChunkInfo {
	return ChunkInfo{Handle: c.h, Version: c.version, Length: c.length, Corrupt: c.broken != nil || len(c.corrupt) > 0}
}

func (c *chunk) closeFiles() {
	if c.data != nil {
		c.data.Close()
		c.data = nil
	}
	if c.meta != nil {
		c.meta.Close()
		c.meta = nil
	}
	c.fmu.Lock()
	if c.rfile != nil {
		c.rfile.release()
		c.rfile = nil
	}
	c.fmu.Unlock()
	c.tailOK = false
	c.tail, c.tailSpare = nil, nil
}

// openFiles opens c's data and .meta files if they are closed. The caller
// holds c.mu (shared or exclusive).
func (s *Store) openFiles(c *chunk) error {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.data == nil {
		f, err := openDataFile(s.dataPath(c.h), os.O_RDWR, s.direct)
		if err != nil {
			return fmt.Errorf("open chunk %016x: %w", uint64(c.h), err)
		}
		c.data = f
	}
	if c.meta == nil {
		f, err := os.OpenFile(s.metaPath(c.h), os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("open chunk %016x: %w", uint64(c.h), err)
		}
		c.meta = f
	}
	return nil
}

// readFile returns a new reference to the chunk's buffered read descriptor.
func (s *Store) readFile(c *chunk) (*sharedFile, error) {
	c.fmu.Lock()
	defer c.fmu.Unlock()
	if c.rfile == nil {
		f, err := os.Open(s.dataPath(c.h))
		if err != nil {
			return nil, err
		}
		c.rfile = &sharedFile{f: f}
		c.rfile.refs.Store(1)
	}
	c.rfile.refs.Add(1)
	return c.rfile, nil
}

// loadChunk opens chunk h's files and rebuilds its state. A chunk whose
// header is not marked clean was being written when the last process
// stopped: every block is verified and the bytes past its length are reset
// to zeros (so holes and padding read as zeros). It returns the blocks found
// corrupt, to report once the store is ready.
func (s *Store) loadChunk(h Handle, dataMissing bool) (*chunk, []int, error) {
	c := &chunk{h: h}
	raw, err := os.ReadFile(s.metaPath(h))
	if err != nil {
		return nil, nil, fmt.Errorf("store: read metadata of chunk %016x: %w", uint64(h), err)
	}
	if len(raw) < headerSize {
		if st, err := os.Stat(s.dataPath(h)); dataMissing || (err == nil && st.Size() == 0) {
			// A Create interrupted before its header was written: never
			// acknowledged as durable, and holding no data.
			s.log.Info("store: removing leftover of an interrupted create", "chunk", h)
			os.Remove(s.metaPath(h))
			os.Remove(s.dataPath(h))
			return nil, nil, nil
		}
	}
	m, derr := decodeMeta(raw)
	if derr == nil && m.Header.Handle != h {
		derr = fmt.Errorf("%w: handle %016x in file of chunk %016x", errMeta, uint64(m.Header.Handle), uint64(h))
	}
	if derr != nil {
		// Version unknown: report it as version 0 and corrupt, so the
		// master treats the replica as stale and deletes it.
		s.log.Error("store: chunk metadata unreadable", "chunk", h, "err", derr)
		c.broken = fmt.Errorf("chunk %016x: %w", uint64(h), &ChecksumError{Handle: h, Block: -1})
		return c, []int{-1}, nil
	}
	c.version = m.Header.Version
	c.length = m.Length
	c.sums = m.Sums
	c.clean = m.Header.Clean && !dataMissing
	for _, b := range m.Corrupt {
		if c.corrupt == nil {
			c.corrupt = map[int]bool{}
		}
		c.corrupt[b] = true
		c.clean = false
	}
	if c.data, err = openDataFile(s.dataPath(h), os.O_RDWR|os.O_CREATE, s.direct); err != nil {
		return nil, nil, fmt.Errorf("store: open chunk %016x: %w", uint64(h), err)
	}
	if c.meta, err = os.OpenFile(s.metaPath(h), os.O_RDWR, 0o644); err != nil {
		c.data.Close()
		return nil, nil, fmt.Errorf("store: open chunk %016x: %w", uint64(h), err)
	}
	st, err := c.data.Stat()
	if err != nil {
		c.closeFiles()
		return nil, nil, fmt.Errorf("store: stat chunk %016x: %w", uint64(h), err)
	}
	c.fileSize = st.Size()
	if !c.clean {
		if err := s.recoverChunk(c); err != nil {
			c.closeFiles()
			return nil, nil, fmt.Errorf("store: recover chunk %016x: %w", uint64(h), err)
		}
	}
	if reservedPastEnd(st) {
		// Space an earlier process reserved and never gave back (it was
		// killed, or stopped before the chunk went idle). Truncating to
		// the current size frees only what lies past the end.
		if err := c.data.Truncate(c.fileSize); err != nil {
			s.log.Warn("store: could not give back reserved space", "chunk", h, "err", err)
		}
	}
	// Opened again when first used.
	c.closeFiles()
	var bad []int
	for b := range c.corrupt {
		bad = append(bad, b)
	}
	slices.Sort(bad)
	return c, bad, nil
}

// recoverChunk verifies every block of c and restores the invariant that the
// data file holds zeros past the chunk's length.
func (s *Store) recoverChunk(c *chunk) error {
	buf := GetBuffer(1 << 20)
	defer PutBuffer(buf)
	for pos := int64(0); pos < c.length; pos += int64(len(buf.B)) {
		end := min(pos+int64(len(buf.B)), c.length)
		if err := s.readAligned(c, buf.B[:alignUp(end-pos, s.align)], pos); err != nil {
			return err
		}
		for b := int(pos / BlockSize); int64(b)*BlockSize < end; b++ {
			bs := int64(b)*BlockSize - pos
			if c.corrupt[b] {
				continue
			}
			if xxhash.Sum64(buf.B[bs:bs+blockLen(b, c.length)]) != c.sums[b] {
				if c.corrupt == nil {
					c.corrupt = map[int]bool{}
				}
				c.corrupt[b] = false
			}
		}
	}
	// Bytes past the length may hold a write that was never acknowledged.
	keep := alignUp(c.length, s.align)
	if c.fileSize > keep {
		if err := c.data.Truncate(keep); err != nil {
			return err
		}
		c.fileSize = keep
	}
	if c.length%s.align != 0 && c.fileSize >= keep {
		sec := GetBuffer(int(s.align))
		defer PutBuffer(sec)
		so := alignDown(c.length, s.align)
		if err := s.readAligned(c, sec.B, so); err != nil {
			return err
		}
		clear(sec.B[c.length-so:])
		if _, err := c.data.WriteAt(sec.B, so); err != nil {
			return ioError(err)
		}
	}
	return nil
}

// readAligned fills p (aligned, len a multiple of the sector) from the data
// file at off (a sector multiple); bytes past the end of the file read as
// zeros.
func (s *Store) readAligned(c *chunk, p []byte, off int64) error {
	for done := 0; done < len(p); {
		n, err := c.data.ReadAt(p[done:], off+int64(done))
		done += n
		if err == io.EOF || (err == nil && n == 0) {
			clear(p[done:])
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeMeta replaces c's .meta file by one with version v and the clean
// flag, durably: write aside, fdatasync, rename, fsync the directory. On
// error the old file is in place and c is unchanged.
func (s *Store) writeMeta(c *chunk, v Version, clean bool) error {
	if s.hooks.metaWrite != nil {
		if err := s.hooks.metaWrite(c); err != nil {
			return err
		}
	}
	if len(c.corrupt) > 0 {
		clean = false
	}
	capBlocks := int(s.chunkSize / BlockSize)
	b := encodeMeta(metaHeader{Handle: c.h, Version: v, Algorithm: algXXHash64, BlockSize: BlockSize, Clean: clean}, c.length, c.sums, c.corrupt, capBlocks)
	path := s.metaPath(c.h)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := datasync(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := s.dirFile.Sync(); err != nil {
		// The new header is in place but may or may not survive a power
		// loss: neither the old nor the new state can be promised, so the
		// chunk stops serving (fail-stop; the master re-replicates it).
		if c.meta != nil {
			c.meta.Close()
		}
		c.meta = f
		c.broken = fmt.Errorf("chunk %016x: directory sync failed after metadata rewrite: %w", uint64(c.h), err)
		s.log.Error("store: chunk taken offline", "chunk", c.h, "err", err)
		return err
	}
	if c.meta != nil {
		c.meta.Close()
	}
	c.meta = f
	c.clean = clean
	c.needDirSync.Store(false)
	return nil
}

// markClean syncs c's data and entries and rewrites its header as clean, so
// that the next Open does not need to verify it.
func (s *Store) markClean(c *chunk) error {
	if err := s.openFiles(c); err != nil {
		return err
	}
	if err := datasync(c.data); err != nil {
		return fmt.Errorf("sync chunk %016x: %w", uint64(c.h), err)
	}
	if err := datasync(c.meta); err != nil {
		return fmt.Errorf("sync chunk %016x: %w", uint64(c.h), err)
	}
	if err := s.writeMeta(c, c.version, true); err != nil {
		return fmt.Errorf("mark chunk %016x clean: %w", uint64(c.h), err)
	}
	return nil
}

// loadTail makes the tail state valid: reads the partial last block,
// verifies it and keeps its digest and last sector in memory.
func (s *Store) loadTail(c *chunk) error {
	if c.tail == nil {
		c.tail = alignedAlloc(int(max(s.align, 1)))
	}
	c.tailDig.Reset()
	clear(c.tail)
	if c.length%BlockSize == 0 {
		c.tailOK = true
		return nil
	}
	b := len(c.sums) - 1
	bs := int64(b) * BlockSize
	n := c.length - bs
	buf := GetBuffer(BlockSize)
	defer PutBuffer(buf)
	if err := s.readAligned(c, buf.B[:alignUp(n, s.align)], bs); err != nil {
		return fmt.Errorf("read chunk %016x block %d: %w", uint64(c.h), b, err)
	}
	if c.corrupt[b] || xxhash.Sum64(buf.B[:n]) != c.sums[b] {
		return s.markCorrupt(c, b)
	}
	c.tailDig.Write(buf.B[:n])
	so := alignDown(c.length, s.align)
	copy(c.tail, buf.B[so-bs:n])
	c.tailOK = true
	return nil
}

// markCorrupt records block b of c as corrupt and returns the error to give
// the caller. The caller reports it (after dropping locks).
func (s *Store) markCorrupt(c *chunk, b int) error {
	if c.corrupt == nil {
		c.corrupt = map[int]bool{}
	}
	if _, ok := c.corrupt[b]; !ok {
		c.corrupt[b] = false
	}
	return &ChecksumError{Handle: c.h, Block: b}
}

func alignDown(x, a int64) int64 { return x - x%a }
func alignUp(x, a int64) int64   { return (x + a - 1) / a * a }
