package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// File is an open GFS file. It holds no server-side state: it is a path and
// the client's caches, safe for concurrent use, and needs no Close.
//
// GFS semantics apply (GFS 2.7): concurrent WriteAt calls on overlapping
// regions leave the region consistent but possibly mixed; a failed write may
// leave it inconsistent until rewritten.
type File struct {
	c    *Client
	path string
}

var (
	_ io.ReaderAt = (*File)(nil)
	_ io.WriterAt = (*File)(nil)
)

// Open returns a handle to the existing file path (ErrNotFound when missing,
// ErrIsDir for a directory) and drops the client's cached locations of it.
func (c *Client) Open(ctx context.Context, path string) (*File, error) {
	fi, err := c.Stat(ctx, path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir {
		return nil, fmt.Errorf("open %s: %w", path, ErrIsDir)
	}
	// GFS 2.7.1: opening a file purges its cached chunk locations, which
	// bounds how long a reader can see a replaced file's old chunks.
	c.forget(path)
	return &File{c: c, path: path}, nil
}

// Name returns the file's path.
func (f *File) Name() string { return f.path }

// ReadAt implements io.ReaderAt with a background context.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	return f.ReadAtContext(context.Background(), p, off)
}

// WriteAt implements io.WriterAt with a background context.
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	return f.WriteAtContext(context.Background(), p, off)
}

// ReadAtContext reads len(p) bytes at off, verifying every byte's checksum.
// It returns n < len(p) only with an error, io.EOF at the end of the file.
// Holes (never written regions before the end) read as zeros. Each chunk is
// read from the nearest replica; on error, timeout or checksum mismatch the
// next replica is tried (a checksum mismatch is reported to the master).
func (f *File) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: %w: negative offset %d", f.path, ErrBadArgument, off)
	}
	cs, err := f.c.chunkSizeOf(ctx, f.path)
	if err != nil {
		return 0, err
	}
	total := 0
	for total < len(p) {
		idx, within := off/cs, off%cs
		want := int(min(int64(len(p)-total), cs-within))
		n, eof, err := f.c.readChunk(ctx, f.path, idx, within, p[total:total+want])
		total += n
		off += int64(n)
		if err != nil {
			return total, err
		}
		if !eof {
			continue
		}
		// The chunk ended before want bytes: a hole inside the file, or
		// the file's end. Ask the master how many chunks exist now.
		_, fc, err := f.c.lookup(ctx, f.path, idx, 1, false, false)
		if err != nil {
			return total, err
		}
		if idx >= fc-1 {
			return total, io.EOF
		}
		hole := want - n
		clear(p[total : total+hole])
		total += hole
		off += int64(hole)
	}
	return total, nil
}

// readChunk reads into p from chunk idx at within. eof reports that the
// chunk (or the file) ended before len(p) bytes.
func (c *Client) readChunk(ctx context.Context, path string, idx, within int64, p []byte) (n int, eof bool, err error) {
	bo := c.newBackoff()
	var lastErr error
	for attempt := 0; ; attempt++ {
		loc, err := c.locate(ctx, path, idx, false, false)
		if errors.Is(err, errPastEnd) {
			return 0, true, nil
		}
		if err != nil {
			if !control.Retryable(err) || !bo.sleep(ctx) {
				return 0, false, err
			}
			continue
		}
		// Spread the segments of one chunk over its replicas: a streaming
		// reader keeps several of them in flight at once.
		spread := loc.Handle + uint64(within/c.opts.ReadSegmentBytes)
		// A replica whose chunk ends before the length the master knows
		// lacks acknowledged bytes (lengths only grow): try the others
		// and keep the longest answer (faults B10: a listed replica with
		// 0 bytes cut a file short).
		var short []byte
		shortEnd := false
		for _, addr := range c.readOrder(loc, spread) {
			n, err := c.data.Read(dataContext(ctx, loc), addr, loc.Handle, loc.Version, within, p)
			if err == nil || isChunkEnd(err) {
				if err == nil {
					return n, false, nil
				}
				// A chunk end is never taken from one replica alone: the
				// master's known length lags the reports, and a listed
				// replica may lack acknowledged bytes (a copy still
				// filling). Ask the others and keep the longest answer.
				c.log.Debug("replica ended the chunk early, trying the next", "path", path, "chunk", idx, "handle", loc.Handle, "replica", addr, "end", within+int64(n), "length", loc.Length)
				if short == nil || n > len(short) {
					short = append(short[:0], p[:n]...)
				}
				shortEnd = true
				continue
			}
			if ctx.Err() != nil {
				return 0, false, fmt.Errorf("read %s chunk %d: %w", path, idx, ctx.Err())
			}
			lastErr = fmt.Errorf("replica %s: %w", addr, err)
			c.log.Debug("read failed, trying next replica", "path", path, "chunk", idx, "handle", loc.Handle, "replica", addr, "err", err)
			if errors.Is(err, dataclient.ErrDataTLSRequired) || errors.Is(err, dataclient.ErrNoDataTLS) {
				// This client and the chunkservers disagree about data TLS:
				// no replica or later round can answer differently.
				return 0, false, fmt.Errorf("read %s chunk %d: %w", path, idx, lastErr)
			}
			if errors.Is(err, dataclient.ErrChecksum) {
				c.reportBadReplica(ctx, loc.Handle, addr, err)
				lastErr = fmt.Errorf("%w: %w", ErrChecksum, lastErr)
			}
		}
		if shortEnd {
			// Every replica that answered ended early: the longest wins
			// (the known length may also count bytes of a failed mutation).
			return copy(p, short), true, nil
		}
		// Every replica failed (or there were none): the cached location
		// may be stale. Ask the master again a few times, then give up.
		c.invalidate(path, idx)
		c.log.Debug("every replica failed; asking the master again", "path", path, "chunk", idx, "handle", loc.Handle, "version", loc.Version, "replicas", loc.Replicas, "round", attempt)
		if lastErr == nil {
			lastErr = fmt.Errorf("chunk %x has no replica", loc.Handle)
		}
		if attempt >= readRounds || !bo.sleep(ctx) {
			return 0, false, fmt.Errorf("read %s chunk %d: %w: %w", path, idx, ErrNoLiveReplica, lastErr)
		}
	}
}

// readRounds is how many times a read asks the master again after every
// replica of a chunk failed (or none was listed): with the backoff that is
// about three seconds, enough for chunkservers to re-register with a master
// that just restarted.
const readRounds = 7

// isChunkEnd reports whether a data-channel read error is the chunk's end:
// the bare io.EOF dataclient returns. Transport failures may wrap io.EOF
// (a connection closed by a dead server) and must not count as the end.
func isChunkEnd(err error) bool {
	return err == io.EOF //nolint:errorlint // identity on purpose, see above
}

// reportBadReplica tells the master that addr served chunk h failing its
// checksum, so that it re-replicates from a good copy.
func (c *Client) reportBadReplica(ctx context.Context, h uint64, addr string, cause error) {
	_, err := c.master.ReportBadReplica(ctx, &controlpb.ReportBadReplicaRequest{Handle: h, Replica: addr, Reason: cause.Error()})
	if err != nil {
		c.log.Warn("report bad replica failed", "handle", h, "replica", addr, "err", err)
	}
}

// WriteAtContext writes p at off. Writes may span chunks and start past the
// end of the file (the gap reads as zeros). It returns len(p) or an error;
// after an error the written region is undefined (GFS 3.1: retry the write).
func (f *File) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("write %s: %w: negative offset %d", f.path, ErrBadArgument, off)
	}
	cs, err := f.c.chunkSizeOf(ctx, f.path)
	if err != nil {
		return 0, err
	}
	// Split at chunk boundaries and into pieces of at most writePieceMax,
	// and keep up to writeParallel of them in flight: pieces of one chunk
	// are ordered by its primary, pieces of different chunks go to
	// different primaries.
	type piece struct {
		idx, within int64
		start, end  int
	}
	var pieces []piece
	for done := 0; done < len(p); {
		o := off + int64(done)
		idx, within := o/cs, o%cs
		n := int(min(int64(len(p)-done), cs-within, writePieceMax))
		pieces = append(pieces, piece{idx, within, done, done + n})
		done += n
	}
	if len(pieces) == 1 {
		pc := pieces[0]
		if err := f.c.writeChunk(ctx, f.path, pc.idx, pc.within, p[pc.start:pc.end]); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	errs := make([]error, len(pieces))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writeParallel)
	for i, pc := range pieces {
		g.Go(func() error {
			errs[i] = f.c.writeChunk(gctx, f.path, pc.idx, pc.within, p[pc.start:pc.end])
			return errs[i]
		})
	}
	if err := g.Wait(); err != nil {
		// Report the prefix known written: the pieces before the first
		// failed one (all of which finished).
		for i, e := range errs {
			if e != nil {
				return pieces[i].start, e
			}
		}
		return 0, err
	}
	return len(p), nil
}

// writePieceMax and writeParallel shape large WriteAt calls.
const (
	writePieceMax = 8 << 20
	writeParallel = 2
)

// writeChunk writes data into chunk idx at within, retrying through lease
// changes (new primary, version bump) and failed replicas (GFS 3.1: the
// client retries; the master eventually drops a dead replica from the
// chunk's locations).
func (c *Client) writeChunk(ctx context.Context, path string, idx, within int64, data []byte) error {
	bo := c.newBackoff()
	for {
		loc, err := c.locateForWrite(ctx, path, idx)
		if err == nil {
			chain := c.chain(loc)
			err = c.data.Write(dataContext(ctx, loc), chain, loc.Primary, loc.Handle, loc.Version, within, data, c.opts.SyncWrites)
			if err == nil {
				return nil
			}
			err = fmt.Errorf("write %s chunk %d (handle %x v%d, primary %s): %w", path, idx, loc.Handle, loc.Version, loc.Primary, err)
		}
		if !c.mutationRetryable(err, loc.Primary) || ctx.Err() != nil {
			return err
		}
		c.log.Debug("write failed, retrying", "path", path, "chunk", idx, "err", err)
		c.invalidate(path, idx)
		if !bo.sleep(ctx) {
			return err
		}
	}
}

// allocateStep is how many chunks one Lookup may allocate (the master caps
// a call at 1024).
const allocateStep = 1000

// locateForWrite returns chunk idx with a primary, allocating it (and every
// missing chunk before it, allocateStep per call) if needed.
func (c *Client) locateForWrite(ctx context.Context, path string, idx int64) (ChunkLocation, error) {
	for {
		fc, ok := c.cachedFileChunks(path)
		if !ok || idx-fc < allocateStep {
			break
		}
		if _, _, err := c.lookup(ctx, path, fc+allocateStep-1, 1, false, true); err != nil {
			return ChunkLocation{}, err
		}
	}
	loc, err := c.locate(ctx, path, idx, true, true)
	if errors.Is(err, errPastEnd) {
		return loc, fmt.Errorf("lookup %s chunk %d: master did not allocate it", path, idx)
	}
	if err == nil && loc.Primary == "" {
		return loc, fmt.Errorf("lookup %s chunk %d: %w: no primary granted", path, idx, ErrNoLiveReplica)
	}
	return loc, err
}

// chain orders a chunk's replicas for a data push: nearest first, the
// primary included.
func (c *Client) chain(loc ChunkLocation) []string {
	chain := c.orderReplicas(loc.Replicas, loc.Handle)
	for _, a := range chain {
		if a == loc.Primary {
			return chain
		}
	}
	return append(chain, loc.Primary)
}

// mutationRetryable reports whether a failed mutation sent to primary may
// succeed after asking the master again: every data-channel failure (lease
// changes, dead replicas, timeouts), a refusal by another replica of the
// chain, and transient master answers; but not bad input or missing files.
func (c *Client) mutationRetryable(err error, primary string) bool {
	var re *dataclient.ReplicaError
	if errors.As(err, &re) && re.Addr != primary && primary != "" {
		// A secondary refused or failed: its state, not our request, is
		// the problem; the master fixes it (new lease, version, replicas).
		return true
	}
	// The caller's context ending is checked by the caller; a deadline
	// inside the data channel (IOTimeout) is a failure worth retrying.
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrIsDir), errors.Is(err, ErrNotDir),
		errors.Is(err, ErrBadPath), errors.Is(err, ErrBadArgument), errors.Is(err, ErrClosed),
		errors.Is(err, ErrRecordTooLarge), errors.Is(err, dataclient.ErrTooLarge),
		errors.Is(err, dataclient.ErrBadRequest), errors.Is(err, dataclient.ErrOutOfRange),
		errors.Is(err, dataclient.ErrDataTLSRequired), errors.Is(err, dataclient.ErrNoDataTLS):
		return false // configuration mismatches: asking again cannot help
	}
	return true
}

// Length returns the file's current length: the number of chunks from the
// master and the last chunk's length from its replicas (the longest answer:
// replicas of a chunk under mutation may briefly differ).
func (f *File) Length(ctx context.Context) (int64, error) {
	cs, err := f.c.chunkSizeOf(ctx, f.path)
	if err != nil {
		return 0, err
	}
	_, fc, err := f.c.lookup(ctx, f.path, 0, 1, false, false)
	if err != nil {
		return 0, err
	}
	if fc == 0 {
		return 0, nil
	}
	locs, _, err := f.c.lookup(ctx, f.path, fc-1, 1, false, false)
	if err != nil {
		return 0, err
	}
	if len(locs) == 0 || locs[0].Index != fc-1 {
		return 0, fmt.Errorf("length %s: master did not return chunk %d", f.path, fc-1)
	}
	last := locs[0]
	best := int64(-1)
	var lastErr error
	for _, addr := range f.c.orderReplicas(last.Replicas, last.Handle) {
		n, err := f.c.data.Length(dataContext(ctx, last), addr, last.Handle, last.Version)
		if err != nil {
			lastErr = err
			continue
		}
		best = max(best, n)
	}
	if best < 0 {
		if lastErr == nil {
			lastErr = errors.New("no replicas")
		}
		return 0, fmt.Errorf("length %s chunk %d: %w: %w", f.path, fc-1, ErrNoLiveReplica, lastErr)
	}
	return (fc-1)*cs + best, nil
}

// Chunks returns the locations of all chunks of path, in index order, as
// the master knows them now (no lease is requested).
func (c *Client) Chunks(ctx context.Context, path string) ([]ChunkLocation, error) {
	var out []ChunkLocation
	for {
		locs, fc, err := c.lookup(ctx, path, int64(len(out)), 256, false, false)
		if err != nil {
			return nil, err
		}
		out = append(out, locs...)
		if len(locs) == 0 || int64(len(out)) >= fc {
			return out, nil
		}
	}
}

// VerifyReplica reads the whole chunk from replica addr, verifying every
// block's checksum, and returns the chunk's length there. A checksum
// failure (errors.Is ErrChecksum) is reported to the master.
func (c *Client) VerifyReplica(ctx context.Context, loc ChunkLocation, addr string) (int64, error) {
	rc, err := c.ReadReplica(ctx, loc, addr)
	return rc.Length, err
}
