package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
)

// memFS is an in-memory FS for testing the harness: real concurrency, no
// cluster. Hooks inject faults.
type memFS struct {
	mu      sync.Mutex
	entries map[string]*memEntry // by clean absolute path; guarded by mu
	// onRead, when set, may corrupt the bytes a read returns.
	onRead func(path string, p []byte, off int64)
	// dropRecord, when > 0, loses the dropRecord-th record appended.
	dropRecord int
	appended   int // guarded by mu
}

type memEntry struct {
	dir     bool
	data    []byte
	records [][]byte
}

func newMemFS() *memFS { return &memFS{entries: map[string]*memEntry{"/": {dir: true}}} }

// shared returns a Connect that hands out views of one memFS.
func (m *memFS) connect(ctx context.Context, addr string) (FS, error) { return memClient{m}, nil }

type memClient struct{ m *memFS }

func (c memClient) Close() error { return nil }

func (c memClient) Create(ctx context.Context, p string) error {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.entries[p]; ok {
		return fmt.Errorf("create %s: exists", p)
	}
	if e, ok := m.entries[path.Dir(p)]; !ok || !e.dir {
		return fmt.Errorf("create %s: no parent directory", p)
	}
	m.entries[p] = &memEntry{}
	return nil
}

func (c memClient) Mkdir(ctx context.Context, p string) error {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for q := p; q != "/"; q = path.Dir(q) {
		if e, ok := m.entries[q]; ok && !e.dir {
			return fmt.Errorf("mkdir %s: %s is a file", p, q)
		}
		m.entries[q] = &memEntry{dir: true}
	}
	return nil
}

func (c memClient) Open(ctx context.Context, p string) (File, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if e, ok := c.m.entries[p]; !ok || e.dir {
		return nil, fmt.Errorf("open %s: not a file", p)
	}
	return &memFile{m: c.m, path: p}, nil
}

func (c memClient) RecordAppend(ctx context.Context, p string, rec []byte) error {
	m := c.m
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[p]
	if !ok || e.dir {
		return fmt.Errorf("append %s: not a file", p)
	}
	m.appended++
	if m.appended == m.dropRecord {
		return nil // acknowledged, then lost
	}
	e.records = append(e.records, bytes.Clone(rec))
	return nil
}

func (c memClient) NewRecordWriter(ctx context.Context, p string, window int) (RecordWriter, error) {
	return &syncRecordWriter{ctx: ctx, fs: c, path: p}, nil
}

// syncRecordWriter appends each record before returning (window 1).
type syncRecordWriter struct {
	ctx  context.Context
	fs   FS
	path string
}

func (w *syncRecordWriter) Append(rec []byte) error { return w.fs.RecordAppend(w.ctx, w.path, rec) }
func (w *syncRecordWriter) InFlight() int           { return 0 }
func (w *syncRecordWriter) Close() error            { return nil }

func (c memClient) ReadRecords(ctx context.Context, p string, fn func([]byte) error) error {
	c.m.mu.Lock()
	e, ok := c.m.entries[p]
	var recs [][]byte
	if ok {
		recs = e.records
	}
	c.m.mu.Unlock()
	if !ok {
		return fmt.Errorf("records %s: no such file", p)
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (c memClient) Stat(ctx context.Context, p string) (int64, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	e, ok := c.m.entries[p]
	if !ok {
		return 0, fmt.Errorf("stat %s: no such file", p)
	}
	return int64(len(e.data)), nil
}

func (c memClient) List(ctx context.Context, dir string) ([]string, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	var names []string
	for p := range c.m.entries {
		if p != "/" && path.Dir(p) == dir {
			names = append(names, path.Base(p))
		}
	}
	return names, nil
}

func (c memClient) Delete(ctx context.Context, p string) error {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if _, ok := c.m.entries[p]; !ok {
		return fmt.Errorf("delete %s: no such file", p)
	}
	for q := range c.m.entries {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(c.m.entries, q)
		}
	}
	return nil
}

type memFile struct {
	m    *memFS
	path string
}

func (f *memFile) Close() error { return nil }

func (f *memFile) WriteAt(ctx context.Context, p []byte, off int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	e := f.m.entries[f.path]
	if e == nil {
		return errors.New("file deleted")
	}
	if end := off + int64(len(p)); end > int64(len(e.data)) {
		e.data = append(e.data, make([]byte, end-int64(len(e.data)))...)
	}
	copy(e.data[off:], p)
	return nil
}

func (f *memFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	e := f.m.entries[f.path]
	if e == nil {
		f.m.mu.Unlock()
		return 0, errors.New("file deleted")
	}
	var n int
	if off < int64(len(e.data)) {
		n = copy(p, e.data[off:])
	}
	hook := f.m.onRead
	f.m.mu.Unlock()
	if hook != nil {
		hook(f.path, p[:n], off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) NewReader(ctx context.Context) io.ReadCloser {
	return &memReader{f: f}
}

func (f *memFile) Length(ctx context.Context) (int64, error) {
	return memClient{f.m}.Stat(ctx, f.path)
}

type memReader struct {
	f   *memFile
	off int64
}

func (r *memReader) Close() error { return nil }

func (r *memReader) Read(p []byte) (int, error) {
	n, err := r.f.ReadAt(context.Background(), p, r.off)
	r.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}
