package store

import (
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// rescrubPeriod is how often a chunk that did not change is verified again.
const rescrubPeriod = 24 * time.Hour

// scrubBatch is how much the scrubber reads under one shared lock.
const scrubBatch = 1 << 20

// scrubLoop is the scrubber goroutine, started by Open and stopped by Close.
// It gives back the space idle chunks reserved past their ends and (unless
// ScrubRate < 0) verifies idle chunks at no more than ScrubRate bytes per
// second, reports corrupt blocks, and marks verified chunks clean so that
// the next Open need not verify them again.
func (s *Store) scrubLoop() {
	defer s.scrubWG.Done()
	poll := min(max(s.scrubIdle/2, 10*time.Millisecond), 5*time.Second)
	buf := GetBuffer(scrubBatch)
	defer PutBuffer(buf)
	for {
		if !s.scrubPass(buf.B) && !s.sleep(poll) {
			return
		}
		select {
		case <-s.scrubStop:
			return
		default:
		}
	}
}

// sleep waits d or until Close; false means the store is closing.
func (s *Store) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.scrubStop:
		return false
	case <-t.C:
		return true
	}
}

// scrubPass verifies every chunk due for it; false if none was.
func (s *Store) scrubPass(buf []byte) bool {
	s.mu.RLock()
	chunks := make([]*chunk, 0, len(s.chunks))
	for _, c := range s.chunks {
		chunks = append(chunks, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(chunks, func(a, b *chunk) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	did := false
	now := time.Now()
	for _, c := range chunks {
		s.releaseIfIdle(c, now)
		if s.scrubRate < 0 {
			continue
		}
		c.mu.RLock()
		due := c.usable() == nil && c.broken == nil &&
			now.Sub(c.lastWrite) >= s.scrubIdle &&
			(c.scrubbedAt.IsZero() || c.scrubGen != c.writeGen || now.Sub(c.scrubbedAt) >= rescrubPeriod)
		gen := c.writeGen
		c.mu.RUnlock()
		if !due {
			continue
		}
		did = true
		if !s.scrubChunk(c, gen, buf) {
			return did
		}
	}
	return did
}

// releaseIfIdle gives back the space c reserved past its end once it went
// ScrubIdle without writes, whether or not the scrubber verifies it (it
// may be disabled, or find the chunk corrupt).
func (s *Store) releaseIfIdle(c *chunk, now time.Time) {
	c.mu.RLock()
	holds := c.allocated > c.fileSize && c.data != nil && now.Sub(c.lastWrite) >= s.scrubIdle
	c.mu.RUnlock()
	if !holds {
		return
	}
	c.mu.Lock()
	if c.usable() == nil && now.Sub(c.lastWrite) >= s.scrubIdle {
		s.releaseReservation(c)
	}
	c.mu.Unlock()
}

// releaseIdle gives back what a verified, clean, idle chunk holds only for
// active use: the space reserved past its end, its file descriptors and the
// in-memory tail (all reopened or rebuilt by the next use). Called with c.mu
// held exclusively.
func (s *Store) releaseIdle(c *chunk) {
	s.releaseReservation(c)
	c.allocated = 0 // the next write reserves again (cheap where allocated)
	c.closeFiles()  // also drops the tail state, rebuilt by the next write
	c.tailDig.Reset()
}

// scrubChunk verifies c, which had write generation gen; it gives up
// (without a verdict) if c is written meanwhile. false means Close.
func (s *Store) scrubChunk(c *chunk, gen uint64, buf []byte) bool {
	var bad []int
	for pos := int64(0); ; {
		c.mu.RLock()
		if c.usable() != nil || c.writeGen != gen {
			c.mu.RUnlock()
			return true
		}
		length := c.length
		if pos >= length {
			c.mu.RUnlock()
			break
		}
		e := min(pos+int64(len(buf)), length)
		if err := s.openFiles(c); err != nil {
			c.mu.RUnlock()
			s.log.Warn("store: scrub", "chunk", c.h, "err", err)
			return true
		}
		if err := s.readAligned(c, buf[:alignUp(e-pos, s.align)], pos); err != nil {
			c.mu.RUnlock()
			s.log.Warn("store: scrub read failed", "chunk", c.h, "offset", pos, "err", err)
			return true
		}
		for bs := pos; bs < e; bs += BlockSize {
			b := int(bs / BlockSize)
			be := min(bs+BlockSize, e)
			if c.corrupt[b] || xxhash.Sum64(buf[bs-pos:be-pos]) != c.sums[b] {
				bad = append(bad, b)
			}
		}
		c.mu.RUnlock()
		// Rate limit: n bytes cost n/ScrubRate seconds.
		n := e - pos
		pos = e
		if !s.sleep(time.Duration(n) * time.Second / time.Duration(s.scrubRate)) {
			return false
		}
	}
	c.mu.Lock()
	if c.usable() != nil || c.writeGen != gen {
		c.mu.Unlock()
		return true
	}
	for _, b := range bad {
		s.markCorrupt(c, b)
	}
	c.scrubGen = gen
	c.scrubbedAt = time.Now()
	if len(bad) == 0 && !c.clean && !c.needRepair && len(c.corrupt) == 0 && c.broken == nil {
		if err := s.markClean(c); err != nil {
			s.log.Warn("store: scrubber could not mark chunk clean", "chunk", c.h, "err", err)
		}
	}
	if len(bad) == 0 && c.clean {
		s.releaseIdle(c)
	}
	c.mu.Unlock()
	if len(bad) > 0 {
		s.reportCorrupt(c.h, bad)
	}
	return true
}
