package store

import (
	"io"
)

// Readahead for sequential verified reads. Reading a block and hashing it
// are serial inside one ReadAt; when a caller reads a chunk sequentially,
// the store reads and verifies the next window in the background while the
// caller works, so disk and hashing overlap and a stream runs at about the
// disk's speed instead of disk plus hash time.
//
// Each chunk has at most raDepth readaheads; at most raMaxActive exist at once
// (the least recently started finished one is dropped to make room), so
// memory stays bounded at raMaxActive x raMaxWindow. A readahead is only
// used if no write happened since it read (the chunk's write generation is
// the same) and it covers the whole request; anything else falls back to a
// normal read.

const (
	raMinWindow = 256 << 10
	raMaxWindow = 4 << 20
	raMaxActive = 16
)

// readahead is one background read-and-verify of chunk bytes [off, off+n).
type readahead struct {
	c    *chunk
	off  int64 // block-aligned
	want int64 // bytes asked for; n <= want once done
	seq  uint64
	buf  *Buffer
	done chan struct{}

	// Set by the goroutine before done is closed.
	gen uint64 // chunk write generation the bytes were read at
	n   int64
	bad int // first block that did not verify, or -1
	err error
}

// raDepth is how many windows a sequential reader has in flight ahead of
// it: two, so that while the caller waits for one window the next is
// already being read.
const raDepth = 2

// raState is the Store's readahead bookkeeping, guarded by Store.raMu.
type raState struct {
	active map[*chunk][]*readahead // per chunk, in offset order
	count  int                     // readaheads in active
	seqEnd map[*chunk]int64        // where each chunk's last read ended
	seq    uint64
	closed bool
}

// takeReadahead detaches and returns c's readahead covering off; the
// others of c are detached too and returned in drop (to release).
func (s *Store) takeReadahead(c *chunk, off int64) (ra *readahead, drop []*readahead) {
	s.raMu.Lock()
	defer s.raMu.Unlock()
	q := s.ra.active[c]
	if len(q) == 0 {
		return nil, nil
	}
	if first := q[0]; off >= first.off && off < first.off+first.want {
		s.ra.active[c] = q[1:]
		s.ra.count--
		return first, nil
	}
	// Not where the reader is: the stream moved on or restarted.
	delete(s.ra.active, c)
	s.ra.count -= len(q)
	return nil, q
}

// serveReadahead answers a read from ra if it is still valid and covers
// the request, under c.mu (shared). ok=false means read normally.
func (s *Store) serveReadahead(c *chunk, ra *readahead, p []byte, off int64) (n int, bad int, err error, ok bool) {
	bad = -1
	if ra.err != nil || c.usable() != nil || c.broken != nil || ra.gen != c.writeGen || off >= c.length {
		return 0, bad, nil, false
	}
	reqEnd := min(off+int64(len(p)), c.length)
	if reqEnd > ra.off+ra.n {
		return 0, bad, nil, false
	}
	if ra.bad >= 0 {
		if bs := int64(ra.bad) * BlockSize; bs < reqEnd {
			good := max(bs, off)
			copy(p[:good-off], ra.buf.B[off-ra.off:good-ra.off])
			return int(good - off), ra.bad, &ChecksumError{Handle: c.h, Block: ra.bad}, true
		}
	}
	copy(p[:reqEnd-off], ra.buf.B[off-ra.off:reqEnd-ra.off])
	n = int(reqEnd - off)
	if n < len(p) {
		return n, bad, io.EOF, true
	}
	return n, bad, nil, true
}

// releaseReadahead returns ra's buffer once its goroutine is done.
func (s *Store) releaseReadahead(ra *readahead) {
	<-ra.done
	PutBuffer(ra.buf)
	ra.buf = nil
}

// afterRead records that a read of c ended at end, and when the read
// continued the previous one keeps raDepth windows being read ahead.
func (s *Store) afterRead(c *chunk, off, end int64, size int) {
	window := min(max(alignUp(int64(size), BlockSize), raMinWindow), raMaxWindow)
	var started, evicted []*readahead
	s.raMu.Lock()
	if s.ra.closed {
		s.raMu.Unlock()
		return
	}
	if s.ra.seqEnd == nil {
		s.ra.seqEnd = map[*chunk]int64{}
		s.ra.active = map[*chunk][]*readahead{}
	}
	last, seen := s.ra.seqEnd[c]
	s.ra.seqEnd[c] = end
	if !seen || last != off {
		s.raMu.Unlock()
		return
	}
	q := s.ra.active[c]
	next := alignDown(end, BlockSize)
	if len(q) > 0 {
		next = q[len(q)-1].off + q[len(q)-1].want
	}
	for len(q) < raDepth && next < s.chunkSize {
		if s.ra.count >= raMaxActive {
			// Make room by dropping the oldest finished readahead of
			// another chunk, if any.
			var old *readahead
			for oc, oq := range s.ra.active {
				if oc == c {
					continue
				}
				for _, ora := range oq {
					select {
					case <-ora.done:
						if old == nil || ora.seq < old.seq {
							old = ora
						}
					default:
					}
				}
			}
			if old == nil {
				break
			}
			oq := s.ra.active[old.c]
			for i, x := range oq {
				if x == old {
					s.ra.active[old.c] = append(oq[:i:i], oq[i+1:]...)
				}
			}
			s.ra.count--
			evicted = append(evicted, old)
		}
		s.ra.seq++
		ra := &readahead{c: c, off: next, want: window, seq: s.ra.seq, buf: GetBuffer(int(window)), done: make(chan struct{}), bad: -1}
		q = append(q, ra)
		s.ra.count++
		started = append(started, ra)
		next += window
	}
	s.ra.active[c] = q
	s.raWG.Add(len(started))
	s.raMu.Unlock()
	for _, ra := range evicted {
		s.releaseReadahead(ra)
	}
	for _, ra := range started {
		go s.runReadahead(ra)
	}
}

// runReadahead is the readahead goroutine (tracked by raWG, waited for by
// Close): it reads and verifies the window under the chunk's shared lock.
func (s *Store) runReadahead(ra *readahead) {
	defer s.raWG.Done()
	defer close(ra.done)
	c := ra.c
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.usable(); err != nil {
		ra.err = err
		return
	}
	if c.broken != nil {
		ra.err = c.broken
		return
	}
	ra.gen = c.writeGen
	end := min(ra.off+ra.want, c.length)
	if end <= ra.off {
		return
	}
	if ra.err = s.openFiles(c); ra.err != nil {
		return
	}
	ra.n = end - ra.off
	// One read per window: the windows in flight already keep the disk
	// busy while the caller hashes and copies.
	ra.bad, ra.err = s.readVerifyPiece(c, ra.buf.B[:alignUp(ra.n, s.align)], ra.off, end)
}

// dropReadahead forgets c's readahead state (Delete).
func (s *Store) dropReadahead(c *chunk) {
	s.raMu.Lock()
	q := s.ra.active[c]
	delete(s.ra.active, c)
	delete(s.ra.seqEnd, c)
	s.ra.count -= len(q)
	s.raMu.Unlock()
	for _, ra := range q {
		s.releaseReadahead(ra)
	}
}

// stopReadahead stops new readaheads and frees all of them (Close).
func (s *Store) stopReadahead() {
	s.raMu.Lock()
	s.ra.closed = true
	var ras []*readahead
	for _, q := range s.ra.active {
		ras = append(ras, q...)
	}
	s.ra.active, s.ra.seqEnd, s.ra.count = nil, nil, 0
	s.raMu.Unlock()
	for _, ra := range ras {
		s.releaseReadahead(ra)
	}
	s.raWG.Wait()
}
