package master

import (
	"fmt"
	"sort"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// maxReplication caps a file's replica count.
const maxReplication = 16

// serverID indexes Master.servers; compact so a chunk's replica list is small.
type serverID int32

// node is a namespace entry, keyed by its full path in state.nodes (GFS 4.1:
// a lookup table of full paths, no per-directory data structure beyond the
// child names needed for listing).
type node struct {
	dir      bool
	repl     uint8
	mtimeMs  int64
	children map[string]struct{} // dir only: child names
	chunks   []uint64            // file only: chunk handles by index
}

// chunk is the master's per-chunk metadata, kept compact (tens of bytes):
// the version is persisted (op log), replicas and length are not (they come
// from chunkserver reports).
//
// replicas are the chunk's members at version: servers holding every
// mutation acknowledged at it, whether alive now or not (a dead member that
// comes back at the version is listed again). A server joins by creating
// the chunk, by confirming a version bump, or by completing a copy while no
// lease was granted; it leaves by missing a bump, by losing its copy, or by
// being dropped (reported bad, trimmed). Since every primary mutates only
// with all the members its lease names (GrantLease.secondaries), "holds the
// current version" and "holds every acknowledged mutation" coincide for
// members; a non-member reporting the current version may not (a bump
// whose answer was lost, a copy dropped as bad) and is refused while
// chunkMembersKnown is set.
type chunk struct {
	version  uint64
	length   int64
	replicas []serverID // members at version (live or not); see above
	repl     uint8      // target replica count (from the file)
	flags    uint8
}

const (
	// chunkTrashed: the chunk belongs to a deleted file not yet reclaimed.
	chunkTrashed uint8 = 1 << iota
	// chunkMembersKnown (in memory only, never persisted): replicas is
	// exactly the set confirmed at version in this incarnation. Without it
	// (after a restart, until the first version bump; after adopting a
	// reported version) a server reporting the version joins: no lease was
	// granted at it since, so it misses nothing acknowledged.
	chunkMembersKnown
)

func (c *chunk) hasReplica(id serverID) bool {
	for _, r := range c.replicas {
		if r == id {
			return true
		}
	}
	return false
}

func (c *chunk) removeReplica(id serverID) bool {
	for i, r := range c.replicas {
		if r == id {
			c.replicas = append(c.replicas[:i], c.replicas[i+1:]...)
			return true
		}
	}
	return false
}

// trashEntry is a deleted subtree whose chunks are kept until reclaimed.
type trashEntry struct {
	path      string
	deletedMs int64
	chunks    []uint64
}

// state is the persisted metadata (plus chunk replicas and lengths, which
// are rebuilt from reports). Every change goes through apply, both live and
// at replay, so the two cannot disagree. Guarded by Master.mu.
type state struct {
	nodes     map[string]*node
	chunks    map[uint64]*chunk
	trash     map[uint64]*trashEntry
	ceiling   uint64 // handles below it may have been handed out (persisted)
	nextTrash uint64
	requests  *requestTable // recent request ids and their answers (requests.go)
}

func newState() *state {
	return &state{
		nodes:     map[string]*node{"/": {dir: true, children: map[string]struct{}{}}},
		chunks:    make(map[uint64]*chunk),
		trash:     make(map[uint64]*trashEntry),
		ceiling:   1, // handle 0 is never used
		nextTrash: 1,
		requests:  newRequestTable(),
	}
}

func errCode(code controlpb.ErrorCode, format string, args ...any) error {
	return control.Errorf(code, format, args...)
}

var (
	codeNotFound = controlpb.ErrorCode_ERROR_CODE_NOT_FOUND
	codeExists   = controlpb.ErrorCode_ERROR_CODE_EXISTS
	codeNotDir   = controlpb.ErrorCode_ERROR_CODE_NOT_DIR
	codeIsDir    = controlpb.ErrorCode_ERROR_CODE_IS_DIR
	codeNotEmpty = controlpb.ErrorCode_ERROR_CODE_NOT_EMPTY
	codeBadPath  = controlpb.ErrorCode_ERROR_CODE_BAD_PATH
	codeBadArg   = controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT
)

// apply checks rec against the state and applies it, or returns an error
// and changes nothing.
func (s *state) apply(rec []byte) error {
	if len(rec) == 0 {
		return errDecode
	}
	d := &dec{b: rec[1:]}
	switch rec[0] {
	case opReserve:
		c := d.u()
		if err := d.done(); err != nil {
			return err
		}
		if c <= s.ceiling {
			return fmt.Errorf("reserve %d below ceiling %d", c, s.ceiling)
		}
		s.ceiling = c
		return nil
	case opMkdir:
		p, parents, mtime := d.s(), d.bool(), d.i()
		if err := d.done(); err != nil {
			return err
		}
		return s.mkdir(p, parents, mtime)
	case opCreate:
		p, repl, parents, mtime := d.s(), d.u(), d.bool(), d.i()
		if err := d.done(); err != nil {
			return err
		}
		return s.create(p, repl, parents, mtime)
	case opDelete:
		p, recursive, id, mtime := d.s(), d.bool(), d.u(), d.i()
		if err := d.done(); err != nil {
			return err
		}
		return s.remove(p, recursive, id, mtime)
	case opRename:
		src, dst, mtime := d.s(), d.s(), d.i()
		if err := d.done(); err != nil {
			return err
		}
		return s.rename(src, dst, mtime)
	case opAddChunk:
		p, idx, h, v := d.s(), d.u(), d.u(), d.u()
		if err := d.done(); err != nil {
			return err
		}
		return s.addChunk(p, idx, h, v)
	case opVersion:
		h, v := d.u(), d.u()
		if err := d.done(); err != nil {
			return err
		}
		c := s.chunks[h]
		if c == nil {
			return errCode(controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK, "set version of unknown chunk %x", h)
		}
		if v <= c.version {
			return errCode(controlpb.ErrorCode_ERROR_CODE_STALE_VERSION, "chunk %x: version %d not above %d", h, v, c.version)
		}
		c.version = v
		return nil
	case opReclaim:
		id := d.u()
		if err := d.done(); err != nil {
			return err
		}
		t := s.trash[id]
		if t == nil {
			return fmt.Errorf("reclaim unknown trash entry %d", id)
		}
		for _, h := range t.chunks {
			delete(s.chunks, h)
		}
		delete(s.trash, id)
		return nil
	case opRequest:
		id, at, call, inner := d.s(), d.i(), d.u(), d.s()
		if err := d.done(); err != nil {
			return err
		}
		if len(id) != requestIDLen || len(inner) == 0 || inner[0] == opRequest || inner[0] >= ckHeader {
			return fmt.Errorf("%w: request record wraps bad id or record", errDecode)
		}
		if err := s.apply([]byte(inner)); err != nil {
			return err
		}
		s.requests.remember(id, call, at, nil, true)
		return nil
	case ckRequest:
		id, at, call := d.s(), d.i(), d.u()
		if err := d.done(); err != nil {
			return err
		}
		if len(id) != requestIDLen {
			return fmt.Errorf("%w: request id of %d bytes", errDecode, len(id))
		}
		s.requests.remember(id, call, at, nil, true)
		return nil
	case ckHeader:
		c, nt := d.u(), d.u()
		if err := d.done(); err != nil {
			return err
		}
		s.ceiling, s.nextTrash = max(c, 1), max(nt, 1)
		return nil
	case ckDir:
		p, mtime := d.s(), d.i()
		if err := d.done(); err != nil {
			return err
		}
		if err := checkPath(p); err != nil {
			return err // before keepParentMtime, which needs a valid path
		}
		if p == "/" {
			s.nodes["/"].mtimeMs = mtime
			return nil
		}
		defer s.keepParentMtime(p)()
		return s.mkdir(p, false, mtime)
	case ckFile:
		p, repl, mtime := d.s(), d.u(), d.i()
		n := d.count(2)
		hs := make([]uint64, n)
		vs := make([]uint64, n)
		for i := range n {
			hs[i], vs[i] = d.u(), d.u()
		}
		if err := d.done(); err != nil {
			return err
		}
		if err := checkPath(p); err != nil {
			return err
		}
		defer s.keepParentMtime(p)()
		if err := s.create(p, repl, false, mtime); err != nil {
			return err
		}
		for i := range n {
			if err := s.addChunk(p, uint64(i), hs[i], vs[i]); err != nil {
				return err
			}
		}
		s.nodes[p].mtimeMs = mtime
		return nil
	case ckTrash:
		id, p, deleted := d.u(), d.s(), d.i()
		n := d.count(3)
		t := &trashEntry{path: p, deletedMs: deleted, chunks: make([]uint64, n)}
		cs := make([]*chunk, n)
		for i := range n {
			t.chunks[i] = d.u()
			cs[i] = &chunk{version: d.u(), repl: uint8(d.u()), flags: chunkTrashed}
		}
		if err := d.done(); err != nil {
			return err
		}
		if s.trash[id] != nil {
			return fmt.Errorf("duplicate trash entry %d", id)
		}
		for i, h := range t.chunks {
			if h == 0 || s.chunks[h] != nil {
				return fmt.Errorf("trash entry %d: bad or duplicate chunk %x", id, h)
			}
			s.chunks[h] = cs[i]
		}
		s.trash[id] = t
		s.nextTrash = max(s.nextTrash, id+1)
		return nil
	}
	return fmt.Errorf("%w: unknown record type %d", errDecode, rec[0])
}

// keepParentMtime returns a function restoring the mtime p's parent has now:
// checkpoint records carry each directory's own mtime, which adding its
// children at replay must not overwrite.
func (s *state) keepParentMtime(p string) func() {
	par := s.nodes[parentOf(p)]
	if par == nil {
		return func() {}
	}
	m := par.mtimeMs
	return func() { par.mtimeMs = m }
}

// dirFor returns the directory node at p, creating missing ones if parents.
func (s *state) dirFor(p string, parents bool, mtime int64) (*node, error) {
	if n := s.nodes[p]; n != nil {
		if !n.dir {
			return nil, errCode(codeNotDir, "%s is not a directory", p)
		}
		return n, nil
	}
	if !parents {
		return nil, errCode(codeNotFound, "directory %s does not exist", p)
	}
	// Check the whole chain before creating anything.
	for _, a := range ancestors(p) {
		if n := s.nodes[a]; n != nil && !n.dir {
			return nil, errCode(codeNotDir, "%s is not a directory", a)
		}
	}
	for _, a := range append(ancestors(p)[1:], p) {
		if s.nodes[a] == nil {
			s.link(a, &node{dir: true, mtimeMs: mtime, children: map[string]struct{}{}}, mtime)
		}
	}
	return s.nodes[p], nil
}

// link adds n at p (its parent exists) and touches the parent.
func (s *state) link(p string, n *node, mtime int64) {
	s.nodes[p] = n
	par := s.nodes[parentOf(p)]
	par.children[baseOf(p)] = struct{}{}
	par.mtimeMs = mtime
}

func (s *state) mkdir(p string, parents bool, mtime int64) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if n := s.nodes[p]; n != nil {
		if n.dir && parents {
			return nil
		}
		return errCode(codeExists, "%s already exists", p)
	}
	if _, err := s.dirFor(parentOf(p), parents, mtime); err != nil {
		return err
	}
	s.link(p, &node{dir: true, mtimeMs: mtime, children: map[string]struct{}{}}, mtime)
	return nil
}

func (s *state) create(p string, repl uint64, parents bool, mtime int64) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if p == "/" {
		return errCode(codeExists, "/ already exists")
	}
	if repl < 1 || repl > maxReplication {
		return errCode(codeBadArg, "replication %d not in 1..%d", repl, maxReplication)
	}
	if s.nodes[p] != nil {
		return errCode(codeExists, "%s already exists", p)
	}
	if _, err := s.dirFor(parentOf(p), parents, mtime); err != nil {
		return err
	}
	s.link(p, &node{repl: uint8(repl), mtimeMs: mtime}, mtime)
	return nil
}

// subtree returns p and every path below it, parents before children.
func (s *state) subtree(p string) []string {
	out := []string{p}
	for i := 0; i < len(out); i++ {
		n := s.nodes[out[i]]
		if !n.dir {
			continue
		}
		names := make([]string, 0, len(n.children))
		for c := range n.children {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			out = append(out, joinPath(out[i], c))
		}
	}
	return out
}

func (s *state) remove(p string, recursive bool, id uint64, mtime int64) error {
	if err := checkPath(p); err != nil {
		return err
	}
	if p == "/" {
		return errCode(codeBadPath, "cannot delete /")
	}
	n := s.nodes[p]
	if n == nil {
		return errCode(codeNotFound, "%s does not exist", p)
	}
	if n.dir && len(n.children) > 0 && !recursive {
		return errCode(codeNotEmpty, "directory %s is not empty", p)
	}
	if id == 0 || s.trash[id] != nil {
		return fmt.Errorf("delete %s: bad trash id %d", p, id)
	}
	var handles []uint64
	for _, q := range s.subtree(p) {
		handles = append(handles, s.nodes[q].chunks...)
		delete(s.nodes, q)
	}
	par := s.nodes[parentOf(p)]
	delete(par.children, baseOf(p))
	par.mtimeMs = mtime
	if len(handles) > 0 {
		for _, h := range handles {
			s.chunks[h].flags |= chunkTrashed
		}
		s.trash[id] = &trashEntry{path: p, deletedMs: mtime, chunks: handles}
	}
	s.nextTrash = max(s.nextTrash, id+1)
	return nil
}

func (s *state) rename(src, dst string, mtime int64) error {
	if err := checkPath(src); err != nil {
		return err
	}
	if err := checkPath(dst); err != nil {
		return err
	}
	if src == "/" || dst == "/" {
		return errCode(codeBadPath, "cannot rename /")
	}
	if s.nodes[src] == nil {
		return errCode(codeNotFound, "%s does not exist", src)
	}
	if s.nodes[dst] != nil {
		return errCode(codeExists, "%s already exists", dst)
	}
	if isUnder(dst, src) {
		return errCode(codeBadArg, "cannot move %s under itself (%s)", src, dst)
	}
	dpar := s.nodes[parentOf(dst)]
	if dpar == nil {
		return errCode(codeNotFound, "directory %s does not exist", parentOf(dst))
	}
	if !dpar.dir {
		return errCode(codeNotDir, "%s is not a directory", parentOf(dst))
	}
	moved := s.subtree(src)
	nodes := make([]*node, len(moved))
	for i, q := range moved {
		nodes[i] = s.nodes[q]
		delete(s.nodes, q)
	}
	spar := s.nodes[parentOf(src)]
	delete(spar.children, baseOf(src))
	spar.mtimeMs = mtime
	for i, q := range moved {
		s.nodes[dst+q[len(src):]] = nodes[i]
	}
	dpar.children[baseOf(dst)] = struct{}{}
	dpar.mtimeMs = mtime
	return nil
}

func (s *state) addChunk(p string, idx, h, v uint64) error {
	n := s.nodes[p]
	if n == nil {
		return errCode(codeNotFound, "%s does not exist", p)
	}
	if n.dir {
		return errCode(codeIsDir, "%s is a directory", p)
	}
	if idx != uint64(len(n.chunks)) {
		return errCode(codeBadArg, "%s: chunk index %d, file has %d", p, idx, len(n.chunks))
	}
	if h == 0 || h >= s.ceiling || s.chunks[h] != nil {
		return fmt.Errorf("add chunk %x to %s: handle unused or not reserved (ceiling %d)", h, p, s.ceiling)
	}
	s.chunks[h] = &chunk{version: v, repl: n.repl}
	n.chunks = append(n.chunks, h)
	return nil
}

// snapshot emits the state as checkpoint records: header, directories and
// files parents first, then trash entries.
func (s *state) snapshot(emit func([]byte) error) error {
	if err := emit(newRec(ckHeader).u(s.ceiling).u(s.nextTrash).b); err != nil {
		return err
	}
	stack := []string{"/"}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := s.nodes[p]
		var rec []byte
		if n.dir {
			rec = newRec(ckDir).s(p).i(n.mtimeMs).b
			for c := range n.children {
				stack = append(stack, joinPath(p, c))
			}
		} else {
			e := newRec(ckFile).s(p).u(uint64(n.repl)).i(n.mtimeMs).u(uint64(len(n.chunks)))
			for _, h := range n.chunks {
				e.u(h).u(s.chunks[h].version)
			}
			rec = e.b
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	for id, t := range s.trash {
		e := newRec(ckTrash).u(id).s(t.path).i(t.deletedMs).u(uint64(len(t.chunks)))
		for _, h := range t.chunks {
			c := s.chunks[h]
			e.u(h).u(c.version).u(uint64(c.repl))
		}
		if err := emit(e.b); err != nil {
			return err
		}
	}
	return s.requests.each(func(id string, e *requestEntry) error {
		return emit(newRec(ckRequest).s(id).i(e.atMs).u(e.call).b)
	})
}
