package master

import (
	"context"
	"sort"
	"strings"

	"github.com/gfs-go/gfs/control/controlpb"
)

// listDefault and listMax bound one List page.
const (
	listDefault = 1000
	listMax     = 10000
)

// Create creates a file (GFS 4.1: read locks on the ancestors, a write lock
// on the new name, so creates in one directory run in parallel). Answered
// once the create is durable in the op log.
func (m *Master) Create(ctx context.Context, req *controlpb.CreateRequest) (*controlpb.CreateResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	repl := uint64(req.GetReplication())
	if repl == 0 {
		repl = uint64(m.opts.Replication)
	}
	if repl > maxReplication {
		return nil, errCode(codeBadArg, "replication %d above %d", repl, maxReplication)
	}
	defer m.locks.lock(writePath(p))()
	err := m.mutate(mutation{
		id:     req.GetRequestId(),
		call:   callFingerprint(opCreate, p),
		record: func() []byte { return newRec(opCreate).s(p).u(repl).bool(req.GetParents()).i(m.nowMs()).b },
	})
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	info := &controlpb.FileInfo{Path: p, Name: baseOf(p), Replication: uint32(repl)}
	if n := m.st.nodes[p]; n != nil {
		// A retry answered from the request table finds the file as it is
		// now (or gone, if deleted since: then the bare description).
		info = m.fileInfoLocked(p, n)
	}
	m.mu.RUnlock()
	return &controlpb.CreateResponse{Info: info}, nil
}

// Mkdir creates a directory (with parents: missing ancestors too, and an
// existing directory is fine).
func (m *Master) Mkdir(ctx context.Context, req *controlpb.MkdirRequest) (*controlpb.MkdirResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	defer m.locks.lock(writePath(p))()
	m.mu.RLock()
	n := m.st.nodes[p]
	m.mu.RUnlock()
	mu := mutation{
		id:     req.GetRequestId(),
		call:   callFingerprint(opMkdir, p),
		record: func() []byte { return newRec(opMkdir).s(p).bool(req.GetParents()).i(m.nowMs()).b },
	}
	if n != nil && n.dir && req.GetParents() {
		if err := m.answered(mu); err != nil {
			return nil, err
		}
		return &controlpb.MkdirResponse{}, nil
	}
	if err := m.mutate(mu); err != nil {
		return nil, err
	}
	return &controlpb.MkdirResponse{}, nil
}

// Delete hides a file or directory tree at once; its chunks are reclaimed
// after Options.GCGrace (lazy deletion, GFS 4.4).
func (m *Master) Delete(ctx context.Context, req *controlpb.DeleteRequest) (*controlpb.DeleteResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	defer m.locks.lock(writePath(p))()
	err := m.mutate(mutation{
		id:   req.GetRequestId(),
		call: callFingerprint(opDelete, p),
		record: func() []byte {
			return newRec(opDelete).s(p).bool(req.GetRecursive()).u(m.st.nextTrash).i(m.nowMs()).b
		},
		applied: func() {
			// Trashed chunks are no longer re-replicated; drop leases' relevance.
			for h := range m.needCheck {
				if c := m.st.chunks[h]; c != nil && c.flags&chunkTrashed != 0 {
					delete(m.needCheck, h)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return &controlpb.DeleteResponse{}, nil
}

// Rename moves a file or directory tree; the destination must not exist.
func (m *Master) Rename(ctx context.Context, req *controlpb.RenameRequest) (*controlpb.RenameResponse, error) {
	src, dst := req.GetSrc(), req.GetDst()
	if err := checkPath(src); err != nil {
		return nil, err
	}
	if err := checkPath(dst); err != nil {
		return nil, err
	}
	defer m.locks.lock(append(writePath(src), writePath(dst)...))()
	err := m.mutate(mutation{
		id:     req.GetRequestId(),
		call:   callFingerprint(opRename, src, dst),
		record: func() []byte { return newRec(opRename).s(src).s(dst).i(m.nowMs()).b },
	})
	if err != nil {
		return nil, err
	}
	return &controlpb.RenameResponse{}, nil
}

// List returns a directory's entries sorted by name, a page at a time (a
// file lists as itself).
func (m *Master) List(ctx context.Context, req *controlpb.ListRequest) (*controlpb.ListResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = listDefault
	}
	limit = min(limit, listMax)
	defer m.locks.lock(readPath(p))()
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := m.st.nodes[p]
	if n == nil {
		return nil, errCode(codeNotFound, "%s does not exist", p)
	}
	if !n.dir {
		return &controlpb.ListResponse{Entries: []*controlpb.FileInfo{m.fileInfoLocked(p, n)}}, nil
	}
	after := req.GetStartAfter()
	names := make([]string, 0, len(n.children))
	for c := range n.children {
		if c > after {
			names = append(names, c)
		}
	}
	sort.Strings(names)
	resp := &controlpb.ListResponse{}
	if len(names) > limit {
		names = names[:limit]
		resp.Truncated = true
	}
	for _, c := range names {
		cp := joinPath(p, c)
		resp.Entries = append(resp.Entries, m.fileInfoLocked(cp, m.st.nodes[cp]))
	}
	return resp, nil
}

// Stat describes one file or directory.
func (m *Master) Stat(ctx context.Context, req *controlpb.StatRequest) (*controlpb.StatResponse, error) {
	p := req.GetPath()
	if err := checkPath(p); err != nil {
		return nil, err
	}
	defer m.locks.lock(readPath(p))()
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := m.st.nodes[p]
	if n == nil {
		return nil, errCode(codeNotFound, "%s does not exist", p)
	}
	return &controlpb.StatResponse{Info: m.fileInfoLocked(p, n)}, nil
}

// fileInfoLocked describes n at p. Length is the best known: full chunks
// before the last one plus the last one's reported length.
func (m *Master) fileInfoLocked(p string, n *node) *controlpb.FileInfo {
	fi := &controlpb.FileInfo{Path: p, Name: baseOf(p), IsDir: n.dir, MtimeUnixMs: n.mtimeMs}
	if p != "/" {
		fi.Name = p[strings.LastIndexByte(p, '/')+1:]
	}
	if !n.dir {
		fi.Replication = uint32(n.repl)
		fi.Chunks = int64(len(n.chunks))
		if k := len(n.chunks); k > 0 {
			fi.Length = int64(k-1)*m.opts.ChunkSize + m.st.chunks[n.chunks[k-1]].length
		}
	}
	return fi
}
