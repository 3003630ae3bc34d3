package master

import (
	"sort"
	"strings"
	"sync"
)

// lockTable holds per-path read/write locks (GFS 4.1). An operation on
// /d1/d2/leaf read-locks /, /d1 and /d1/d2 and read- or write-locks the
// leaf, so concurrent creates in one directory proceed in parallel while a
// delete or rename of the directory (write lock) excludes them. Locks are
// created on demand and dropped when unused. Deadlock freedom: every
// operation acquires its locks in one total order (depth, then path).
type lockTable struct {
	mu sync.Mutex // guards m
	m  map[string]*pathLock
}

type pathLock struct {
	rw   sync.RWMutex
	refs int // guarded by lockTable.mu
}

type lockReq struct {
	path  string
	write bool
}

func newLockTable() *lockTable { return &lockTable{m: make(map[string]*pathLock)} }

// readPath returns the requests for reading p: read locks on p and its ancestors.
func readPath(p string) []lockReq { return pathReqs(p, false) }

// writePath returns the requests for changing p: read locks on the
// ancestors, a write lock on p.
func writePath(p string) []lockReq { return pathReqs(p, true) }

func pathReqs(p string, write bool) []lockReq {
	anc := ancestors(p)
	out := make([]lockReq, 0, len(anc)+1)
	for _, a := range anc {
		out = append(out, lockReq{path: a})
	}
	return append(out, lockReq{path: p, write: write})
}

// lock acquires all requested locks in the global order and returns the
// function releasing them.
func (t *lockTable) lock(reqs []lockReq) (unlock func()) {
	sort.Slice(reqs, func(i, j int) bool {
		di, dj := strings.Count(reqs[i].path, "/"), strings.Count(reqs[j].path, "/")
		if reqs[i].path == "/" {
			di = 0
		}
		if reqs[j].path == "/" {
			dj = 0
		}
		if di != dj {
			return di < dj
		}
		return reqs[i].path < reqs[j].path
	})
	// Merge duplicates; a write request wins.
	merged := reqs[:0]
	for _, r := range reqs {
		if n := len(merged); n > 0 && merged[n-1].path == r.path {
			merged[n-1].write = merged[n-1].write || r.write
			continue
		}
		merged = append(merged, r)
	}
	held := make([]*pathLock, len(merged))
	t.mu.Lock()
	for i, r := range merged {
		pl := t.m[r.path]
		if pl == nil {
			pl = &pathLock{}
			t.m[r.path] = pl
		}
		pl.refs++
		held[i] = pl
	}
	t.mu.Unlock()
	for i, r := range merged {
		if r.write {
			held[i].rw.Lock()
		} else {
			held[i].rw.RLock()
		}
	}
	return func() {
		for i := len(merged) - 1; i >= 0; i-- {
			if merged[i].write {
				held[i].rw.Unlock()
			} else {
				held[i].rw.RUnlock()
			}
		}
		t.mu.Lock()
		for i, r := range merged {
			held[i].refs--
			if held[i].refs == 0 {
				delete(t.m, r.path)
			}
		}
		t.mu.Unlock()
	}
}
