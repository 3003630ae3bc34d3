package client

import "sort"

// idSet remembers which record ids a RecordReader has returned. Per writer
// it keeps the sequence numbers seen as sorted, disjoint, non-adjacent
// ranges: a writer's records mostly appear in sequence order, so memory
// grows with the number of gaps (appends that failed for good, records
// still out of order), not with the number of records.
type idSet struct {
	writers map[uint64][]seqRange
}

// seqRange holds the sequence numbers lo..hi, inclusive.
type seqRange struct{ lo, hi uint64 }

func newIDSet() *idSet { return &idSet{writers: make(map[uint64][]seqRange)} }

// add records id and reports whether it was new.
func (s *idSet) add(id RecordID) bool {
	rs := s.writers[id.Writer]
	q := id.Sequence
	// i is the first range that starts after q.
	i := sort.Search(len(rs), func(i int) bool { return rs[i].lo > q })
	if i > 0 && rs[i-1].hi >= q {
		return false // inside the range before
	}
	joinPrev := i > 0 && rs[i-1].hi+1 == q
	joinNext := i < len(rs) && q+1 == rs[i].lo
	switch {
	case joinPrev && joinNext:
		rs[i-1].hi = rs[i].hi
		rs = append(rs[:i], rs[i+1:]...)
	case joinPrev:
		rs[i-1].hi = q
	case joinNext:
		rs[i].lo = q
	default:
		rs = append(rs, seqRange{})
		copy(rs[i+1:], rs[i:])
		rs[i] = seqRange{q, q}
	}
	s.writers[id.Writer] = rs
	return true
}

// ranges returns how many ranges the set holds (for tests).
func (s *idSet) ranges() int {
	n := 0
	for _, rs := range s.writers {
		n += len(rs)
	}
	return n
}
