package store

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gfs-go/gfs/internal/dirlock"
)

// Handle identifies a chunk (allocated by the master, never reused).
type Handle uint64

// Version is a chunk's version number (GFS 4.5: bumped by the master at
// every lease grant; a replica with an older version is stale).
type Version uint64

// BlockSize is the checksum granularity: one xxhash64 per BlockSize bytes.
const BlockSize = 64 << 10

// DefaultChunkSize is the chunk size used when Options.ChunkSize is zero.
const DefaultChunkSize = 64 << 20

// ChunkInfo describes one chunk, as reported to the master.
type ChunkInfo struct {
	Handle  Handle
	Version Version
	Length  int64
	// Corrupt is true when at least one block is known not to verify (or
	// the chunk's metadata is unreadable). Such a chunk should be
	// re-replicated from a good copy and deleted here.
	Corrupt bool
}

// Options configures a Store. The zero value of every field means a
// sensible default.
type Options struct {
	// ChunkSize is the maximum chunk size in bytes; 0 means 64 MiB. It must
	// be a multiple of BlockSize.
	ChunkSize int64
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// ScrubRate is the number of bytes per second the background scrubber
	// reads and verifies; 0 means 32 MiB/s, negative disables scrubbing.
	ScrubRate int64
	// ScrubIdle is how long a chunk must go without writes before the
	// scrubber verifies it; 0 means 30 s.
	ScrubIdle time.Duration
	// OnCorrupt, when set, is called (without store locks held) each time
	// a read, the scrubber or recovery at Open finds blocks of a chunk that
	// do not verify. Block -1 means the chunk's metadata is unreadable.
	OnCorrupt func(h Handle, blocks []int)

	// forceBuffered makes Open skip O_DIRECT (tests of the fallback path).
	forceBuffered bool
}

// Store keeps chunks as files in one directory. It is safe for concurrent
// use; operations on different chunks proceed in parallel.
type Store struct {
	dir       string
	log       *slog.Logger
	chunkSize int64
	onCorrupt func(Handle, []int)

	direct   bool  // data files use O_DIRECT
	align    int64 // sector: file offset/length granularity of data writes (1 when buffered)
	memAlign int   // buffer alignment O_DIRECT needs

	lock    *dirlock.Lock // the directory's LOCK (internal/dirlock), held until Close
	dirFile *os.File      // for fsync of the directory after renames

	mu     sync.RWMutex
	chunks map[Handle]*chunk // guarded by mu
	closed bool              // guarded by mu

	noPrealloc atomic.Bool // set once if fallocate is unsupported

	scrubStop chan struct{}
	scrubWG   sync.WaitGroup
	scrubRate int64
	scrubIdle time.Duration

	raMu sync.Mutex
	ra   raState // guarded by raMu
	raWG sync.WaitGroup

	hooks testHooks // fault injection, zero in production
}

// testHooks lets tests inject I/O faults; all nil in production. Each runs
// where the named I/O is about to happen and, by returning an error, makes
// that I/O fail (it may also damage files itself to mimic a partial write).
type testHooks struct {
	prealloc   func(c *chunk) error
	dataWrite  func(c *chunk, off int64, n int) error
	entryWrite func(c *chunk) error
	metaWrite  func(c *chunk) error
}

// Open opens (creating it if needed) the store in dir, recovering chunks
// that were being written when the previous process stopped: their blocks
// are verified and those that do not verify are reported through
// Options.OnCorrupt and Info.
func Open(dir string, opts Options) (*Store, error) {
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.ChunkSize < 0 || opts.ChunkSize%BlockSize != 0 || opts.ChunkSize > maxEntries*BlockSize {
		return nil, fmt.Errorf("store: chunk size %d must be a positive multiple of %d, at most %d", opts.ChunkSize, BlockSize, int64(maxEntries)*BlockSize)
	}
	if opts.ScrubIdle < 0 {
		return nil, fmt.Errorf("store: negative ScrubIdle %v", opts.ScrubIdle)
	}
	if opts.ScrubRate == 0 {
		opts.ScrubRate = 32 << 20
	}
	if opts.ScrubIdle == 0 {
		opts.ScrubIdle = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{
		dir:       dir,
		log:       log,
		chunkSize: opts.ChunkSize,
		onCorrupt: opts.OnCorrupt,
		chunks:    make(map[Handle]*chunk),
		scrubStop: make(chan struct{}),
		scrubRate: opts.ScrubRate,
		scrubIdle: opts.ScrubIdle,
	}
	var err error
	// Before anything in dir is read or changed: a second process on the
	// same store would rewrite the first one's chunks.
	if s.lock, err = dirlock.Acquire(dir); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if s.dirFile, err = os.Open(dir); err != nil {
		s.lock.Release()
		return nil, fmt.Errorf("store: %w", err)
	}
	memAlign, offAlign, ok, perr := probeDirect(dir)
	if opts.forceBuffered {
		ok, perr = false, errors.New("forced by options")
	}
	if ok {
		s.direct = true
		s.align = int64(max(offAlign, bufAlign))
		s.memAlign = memAlign
	} else {
		// tmpfs and some overlays refuse O_DIRECT: buffered writes plus
		// fdatasync on Sync keep the same contract, only slower.
		s.align = 1
		s.memAlign = 1
		s.log.Warn("store: O_DIRECT unavailable, using buffered I/O", "dir", dir, "reason", perr)
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	// Runs also with scrubbing disabled: it gives back idle chunks'
	// reservations.
	s.scrubWG.Add(1)
	go s.scrubLoop()
	return s, nil
}

// load reads every chunk's metadata, removes leftovers of interrupted
// creates and metadata rewrites, and recovers chunks not closed cleanly.
func (s *Store) load() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	metas := map[Handle]bool{}
	datas := map[Handle]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"), strings.HasPrefix(name, ".dioprobe-"):
			// A metadata rewrite that never reached its rename, or the
			// O_DIRECT probe of a process that died in Open.
			os.Remove(filepath.Join(s.dir, name))
		case strings.HasSuffix(name, ".meta"), strings.HasSuffix(name, ".chunk"):
			base := strings.TrimSuffix(strings.TrimSuffix(name, ".meta"), ".chunk")
			v, err := strconv.ParseUint(base, 16, 64)
			if err != nil || len(base) != 16 {
				s.log.Warn("store: ignoring unexpected file", "file", name)
				continue
			}
			if strings.HasSuffix(name, ".meta") {
				metas[Handle(v)] = true
			} else {
				datas[Handle(v)] = true
			}
		}
	}
	for h := range datas {
		if !metas[h] {
			// Create writes the data file first and the metadata last,
			// Delete removes the metadata first: a lone data file is a
			// chunk that was never acknowledged or already deleted.
			s.log.Info("store: removing data file without metadata", "chunk", h)
			os.Remove(s.dataPath(h))
		}
	}
	handles := make([]Handle, 0, len(metas))
	for h := range metas {
		handles = append(handles, h)
	}
	slices.Sort(handles)
	// Chunks not closed cleanly are verified block by block: several at
	// once, so the disk has more than one read in flight (1,000 dirty
	// 1 MiB chunks: 1.18 s one at a time, 0.66-0.77 s with 4, 8 or 16
	// workers; see BenchmarkOpenDirty). A chunkserver restarted after
	// kill -9 registers with the master only once its store is open.
	type loaded struct {
		c   *chunk
		bad []int
		err error
	}
	out := make([]loaded, len(handles))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(loadWorkers, len(handles)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(handles) {
					return
				}
				h := handles[i]
				c, bad, err := s.loadChunk(h, !datas[h])
				out[i] = loaded{c, bad, err}
				if err != nil {
					next.Store(int64(len(handles))) // stop the others early
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range handles {
		if err := out[i].err; err != nil {
			return err
		}
	}
	for i, h := range handles {
		c, bad := out[i].c, out[i].bad
		if c == nil {
			continue
		}
		s.chunks[h] = c
		if len(bad) > 0 {
			s.reportCorrupt(h, bad)
		}
	}
	return nil
}

// loadWorkers is how many chunks Open loads (and verifies) at once.
const loadWorkers = 8

func (s *Store) dataPath(h Handle) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.chunk", uint64(h)))
}

func (s *Store) metaPath(h Handle) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.meta", uint64(h)))
}

// ChunkSize returns the maximum chunk size.
func (s *Store) ChunkSize() int64 { return s.chunkSize }

// Direct reports whether data files are written with O_DIRECT (false when
// the file system refused it and the store fell back to buffered I/O).
func (s *Store) Direct() bool { return s.direct }

// Close stops the scrubber, marks every chunk without known corruption clean
// (after syncing it) so the next Open need not verify it, and closes all
// files. Ranges still held stay usable until released.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	close(s.scrubStop)
	s.scrubWG.Wait()
	s.stopReadahead()

	var errs []error
	s.mu.RLock()
	chunks := make([]*chunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		chunks = append(chunks, c)
	}
	s.mu.RUnlock()
	for _, c := range chunks {
		c.mu.Lock()
		if !c.closed && !c.deleted {
			if c.broken == nil && !c.clean && len(c.corrupt) == 0 && !c.needRepair {
				if err := s.markClean(c); err != nil {
					errs = append(errs, err)
				}
			}
			c.closeFiles()
			c.closed = true
		}
		c.mu.Unlock()
	}
	s.closeFiles()
	return errors.Join(errs...)
}

func (s *Store) closeFiles() {
	if s.dirFile != nil {
		s.dirFile.Close()
	}
	s.lock.Release()
}

// lookup returns the chunk for h, or ErrNotFound / ErrClosed.
func (s *Store) lookup(h Handle) (*chunk, error) {
	s.mu.RLock()
	c, ok := s.chunks[h]
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		return nil, fmt.Errorf("chunk %016x: %w", uint64(h), ErrNotFound)
	}
	return c, nil
}

// usable reports why c cannot be used (closed, deleted), under c.mu.
func (c *chunk) usable() error {
	if c.closed {
		return ErrClosed
	}
	if c.deleted {
		return fmt.Errorf("chunk %016x: %w", uint64(c.h), ErrNotFound)
	}
	return nil
}

// Create creates an empty chunk h at version v, durably.
func (s *Store) Create(h Handle, v Version) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if _, ok := s.chunks[h]; ok {
		s.mu.Unlock()
		return fmt.Errorf("create chunk %016x: %w", uint64(h), ErrExists)
	}
	c := &chunk{h: h, version: v}
	c.mu.Lock()
	s.chunks[h] = c
	s.mu.Unlock()
	defer c.mu.Unlock()

	err := s.createFiles(c)
	if err != nil {
		c.deleted = true
		s.mu.Lock()
		delete(s.chunks, h)
		s.mu.Unlock()
		return fmt.Errorf("create chunk %016x: %w", uint64(h), ioError(err))
	}
	return nil
}

func (s *Store) createFiles(c *chunk) error {
	dp := s.dataPath(c.h)
	// A stale data file can only be an orphan (no metadata): replace it.
	os.Remove(dp)
	data, err := openDataFile(dp, os.O_RDWR|os.O_CREATE|os.O_EXCL, s.direct)
	if err != nil {
		return err
	}
	c.data = data
	// Written in place, dirty (an empty chunk costs nothing to verify, and
	// the first append then needs no metadata rewrite) and without fsync:
	// creation becomes durable with the chunk's first Sync or SetVersion
	// (see doc.go). A crash before the header is complete leaves a short
	// .meta beside an empty data file, which Open removes.
	err = func() error {
		if s.hooks.metaWrite != nil {
			if err := s.hooks.metaWrite(c); err != nil {
				return err
			}
		}
		b := encodeMeta(metaHeader{Handle: c.h, Version: c.version, Algorithm: algXXHash64, BlockSize: BlockSize}, 0, nil, nil, int(s.chunkSize/BlockSize))
		f, err := os.OpenFile(s.metaPath(c.h), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(b, 0); err != nil {
			f.Close()
			os.Remove(s.metaPath(c.h))
			return err
		}
		c.meta = f
		return nil
	}()
	if err != nil {
		data.Close()
		c.data = nil
		os.Remove(dp)
		return err
	}
	c.needDirSync.Store(true)
	return nil
}

// Delete removes chunk h and its files. Ranges still held stay readable
// until released.
func (s *Store) Delete(h Handle) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	defer s.dropReadahead(c) // after c.mu is released: the readahead needs it
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	// Metadata first: a crash in between leaves a lone data file, which
	// Open removes.
	if err := os.Remove(s.metaPath(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete chunk %016x: %w", uint64(h), err)
	}
	c.deleted = true
	os.Remove(s.dataPath(h))
	c.closeFiles()
	s.mu.Lock()
	if s.chunks[h] == c {
		delete(s.chunks, h)
	}
	s.mu.Unlock()
	return nil
}

// SetVersion sets chunk h's version; it is durable when SetVersion returns,
// and on error the version on disk and in memory is unchanged.
func (s *Store) SetVersion(h Handle, v Version) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("set version: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return fmt.Errorf("set version: %w", err)
	}
	if c.broken != nil {
		return fmt.Errorf("set version: %w", c.broken)
	}
	if err := s.writeMeta(c, v, c.clean); err != nil {
		return fmt.Errorf("set version of chunk %016x to %d: %w", uint64(h), v, ioError(err))
	}
	c.version = v
	return nil
}

// Commit makes chunk h durable at version v and marks it clean, with one
// fdatasync of its data and one metadata rewrite (header and entries
// written whole, synced, renamed, directory synced). It is for a chunk
// written in full by one writer that verified the bytes as it wrote them
// (a re-replication copy): Sync then SetVersion cost five syncs, and the
// scrubber's later clean mark four more, each a cache flush that holds
// every other write on the disk (BenchmarkCopyChunk). A chunk with known
// corrupt blocks or an unfinished repair is committed dirty.
func (s *Store) Commit(h Handle, v Version) error {
	c, err := s.lookup(h)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if c.broken != nil {
		return fmt.Errorf("commit: %w", c.broken)
	}
	if err := s.openFiles(c); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if err := datasync(c.data); err != nil {
		return fmt.Errorf("commit chunk %016x: sync data: %w", uint64(h), ioError(err))
	}
	clean := !c.needRepair && len(c.corrupt) == 0
	if err := s.writeMeta(c, v, clean); err != nil {
		return fmt.Errorf("commit chunk %016x at version %d: %w", uint64(h), v, ioError(err))
	}
	c.version = v
	return nil
}

// Info describes chunk h.
func (s *Store) Info(h Handle) (ChunkInfo, error) {
	c, err := s.lookup(h)
	if err != nil {
		return ChunkInfo{}, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return ChunkInfo{}, err
	}
	return c.info(), nil
}

// Checksums is a chunk's stored block checksums (BlockChecksums).
type Checksums struct {
	Version Version
	Length  int64
	// Sums is the xxhash64 of every BlockSize block of [0, Length); the
	// last one covers the partial tail.
	Sums []uint64
	// Corrupt: some block is known not to verify (Sums are then not worth
	// comparing with other replicas').
	Corrupt bool
}

// BlockChecksums returns a copy of chunk h's stored block checksums: what
// replicas of a chunk compare with each other without moving their data
// (reads and the scrubber verify the data against these very sums).
func (s *Store) BlockChecksums(h Handle) (Checksums, error) {
	c, err := s.lookup(h)
	if err != nil {
		return Checksums{}, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		return Checksums{}, err
	}
	return Checksums{Version: c.version, Length: c.length, Sums: slices.Clone(c.sums[:min(len(c.sums), blocksOf(c.length))]), Corrupt: c.info().Corrupt}, nil
}

// List describes every chunk, sorted by handle (for chunk reports).
func (s *Store) List() []ChunkInfo {
	s.mu.RLock()
	chunks := make([]*chunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		chunks = append(chunks, c)
	}
	s.mu.RUnlock()
	out := make([]ChunkInfo, 0, len(chunks))
	for _, c := range chunks {
		c.mu.RLock()
		if c.usable() == nil {
			out = append(out, c.info())
		}
		c.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b ChunkInfo) int {
		switch {
		case a.Handle < b.Handle:
			return -1
		case a.Handle > b.Handle:
			return 1
		}
		return 0
	})
	return out
}

// Space reports the free and total bytes of the store's file system.
func (s *Store) Space() (free, total int64, err error) {
	free, total, err = fsSpace(s.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("store: space of %s: %w", s.dir, err)
	}
	return free, total, nil
}

// reportCorrupt calls Options.OnCorrupt; callers hold no store locks.
func (s *Store) reportCorrupt(h Handle, blocks []int) {
	s.log.Warn("store: corrupt blocks", "chunk", h, "blocks", blocks)
	if s.onCorrupt != nil {
		s.onCorrupt(h, blocks)
	}
}
