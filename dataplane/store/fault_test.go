package store

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gfs-go/gfs/internal/dirlock"
)

// junk writes 0xAA over [off, off+n) of c's data file through a separate
// buffered descriptor: what a write that failed half way may leave behind.
func junk(t *testing.T, s *Store, c *chunk, off int64, n int) {
	f, err := os.OpenFile(s.dataPath(c.h), os.O_RDWR, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, n), off); err != nil {
		t.Error(err)
	}
}

func TestNoSpaceFromReservation(t *testing.T) {
	s := openT(t, t.TempDir(), Options{ScrubRate: -1})
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	want := randBytes(r, 100<<10+7)
	if err := s.Create(1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(1, want); err != nil {
		t.Fatal(err)
	}
	s.hooks.prealloc = func(*chunk) error { return syscall.ENOSPC }
	_, err := s.Append(1, randBytes(r, 5<<20))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk = %v, want ErrNoSpace wrapping ENOSPC", err)
	}
	if info, _ := s.Info(1); info.Length != int64(len(want)) || info.Corrupt {
		t.Fatalf("after failed append: %+v", info)
	}
	checkChunk(t, s, 1, want)
	s.hooks.prealloc = nil
	more := randBytes(r, 5<<20)
	if _, err := s.Append(1, more); err != nil {
		t.Fatal(err)
	}
	checkChunk(t, s, 1, append(want, more...))
}

// TestFailedDataWrite: a data write that fails after scribbling past the
// chunk's end changes nothing visible, and later holes and padding over
// the scribbled range still read as zeros.
func TestFailedDataWrite(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		dir := t.TempDir()
		opts := Options{ChunkSize: 1 << 20, ScrubRate: -1, forceBuffered: buffered}
		s := openT(t, dir, opts)
		r := rand.New(rand.NewPCG(3, 4))
		want := randBytes(r, 70000)
		if err := s.Create(1, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(1, want); err != nil {
			t.Fatal(err)
		}
		s.hooks.dataWrite = func(c *chunk, off int64, n int) error {
			junk(t, s, c, off, n)
			return syscall.EIO
		}
		if _, err := s.Append(1, randBytes(r, 200000)); !errors.Is(err, syscall.EIO) || errors.Is(err, ErrNoSpace) {
			t.Fatalf("append with failing disk = %v", err)
		}
		if err := s.WriteAt(1, randBytes(r, 1000), 300000); !errors.Is(err, syscall.EIO) {
			t.Fatalf("write with failing disk = %v", err)
		}
		s.hooks.dataWrite = nil
		checkChunk(t, s, 1, want)
		if err := s.PadTo(1, 150000); err != nil {
			t.Fatal(err)
		}
		want = append(want, make([]byte, 150000-len(want))...)
		tail := randBytes(r, 999)
		if err := s.WriteAt(1, tail, 320000); err != nil {
			t.Fatal(err)
		}
		want = append(want, make([]byte, 320000-len(want))...)
		want = append(want, tail...)
		checkChunk(t, s, 1, want)
		s.Close()
		s = openT(t, dir, opts)
		checkChunk(t, s, 1, want)
		if info, _ := s.Info(1); info.Corrupt {
			t.Fatal("chunk corrupt after reopen")
		}
		s.Close()
	}
}

// TestFailedEntryWrite: when the checksum entries cannot be written, an
// append is not acknowledged and its bytes never appear; a failed
// overwrite may leave the blocks it touched reported corrupt, never
// silently wrong.
func TestFailedEntryWrite(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ChunkSize: 1 << 20, ScrubRate: -1}
	s := openT(t, dir, opts)
	r := rand.New(rand.NewPCG(5, 6))
	want := randBytes(r, 300000)
	if err := s.Create(1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(1, want); err != nil {
		t.Fatal(err)
	}
	s.hooks.entryWrite = func(*chunk) error { return syscall.EIO }
	if _, err := s.Append(1, randBytes(r, 5000)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("append = %v", err)
	}
	if info, _ := s.Info(1); info.Length != int64(len(want)) {
		t.Fatalf("length %d after failed append", info.Length)
	}
	if err := s.WriteAt(1, randBytes(r, 100), 70000); !errors.Is(err, syscall.EIO) {
		t.Fatalf("overwrite = %v", err)
	}
	s.hooks.entryWrite = nil
	buf := make([]byte, len(want))
	n, err := s.ReadAt(1, buf, 0)
	var ce *ChecksumError
	switch {
	case err == nil:
		if !bytes.Equal(buf, want) {
			t.Fatal("wrong data after failed overwrite")
		}
	case errors.As(err, &ce):
		if ce.Block != 1 || n != BlockSize || !bytes.Equal(buf[:n], want[:n]) {
			t.Fatalf("after failed overwrite: n=%d err=%v", n, err)
		}
	default:
		t.Fatal(err)
	}
	// The next write repairs the entries; appends work again.
	more := randBytes(r, 4000)
	if _, err := s.Append(1, more); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(1); info.Length != int64(len(want)+len(more)) {
		t.Fatalf("length %d", info.Length)
	}
	s.Close()
	s = openT(t, dir, opts)
	defer s.Close()
	all := append(want, more...)
	got := make([]byte, len(all)-2*BlockSize)
	if n, err := s.ReadAt(1, got, 2*BlockSize); n != len(got) || (err != nil && err != io.EOF) {
		t.Fatalf("after reopen: %d, %v", n, err)
	}
	if !bytes.Equal(got, all[2*BlockSize:]) {
		t.Fatal("data past the overwritten block changed")
	}
}

func TestFailedMetaWrite(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	if err := s.Create(1, 4); err != nil {
		t.Fatal(err)
	}
	s.hooks.metaWrite = func(*chunk) error { return syscall.ENOSPC }
	if err := s.SetVersion(1, 5); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("SetVersion on a full disk = %v", err)
	}
	if err := s.Create(2, 1); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Create on a full disk = %v", err)
	}
	if _, err := s.Info(2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed create left a chunk: %v", err)
	}
	if info, _ := s.Info(1); info.Version != 4 {
		t.Fatalf("version %d after failed SetVersion", info.Version)
	}
	s.hooks.metaWrite = nil
	s.Close()
	s = openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	defer s.Close()
	if l := s.List(); len(l) != 1 || l[0].Version != 4 {
		t.Fatalf("after reopen: %+v", l)
	}
	if err := s.Create(2, 1); err != nil {
		t.Fatal(err)
	}
}

// TestRealENOSPC fills a small tmpfs (needs root and mount; skipped
// otherwise) and checks the error and that the chunk stays readable.
func TestRealENOSPC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	dir := filepath.Join(mnt, "store")
	s := openT(t, dir, Options{ChunkSize: 16 << 20, ScrubRate: -1})
	defer s.Close()
	if err := s.Create(1, 1); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	var want []byte
	var err error
	for i := 0; i < 16; i++ {
		p := randBytes(r, 1<<20-3)
		if _, err = s.Append(1, p); err != nil {
			break
		}
		want = append(want, p...)
	}
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling a 6 MiB file system: err = %v after %d bytes", err, len(want))
	}
	if info, _ := s.Info(1); info.Length != int64(len(want)) {
		t.Fatalf("length %d, acknowledged %d", info.Length, len(want))
	}
	checkChunk(t, s, 1, want)
	if err := s.Sync(1); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 10)
	if _, err := s.ReadAt(1, got, int64(len(want))); err != io.EOF {
		t.Fatalf("read at end = %v", err)
	}
}

// TestCommit: Commit leaves the chunk at the new version, clean on disk (the
// next Open does not verify it), with its data; a failed metadata write
// changes nothing; a chunk with a known corrupt block is committed dirty.
func TestCommit(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	data := randBytes(rand.New(rand.NewPCG(1, 2)), 200_000)
	if err := s.Create(1, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAt(1, data, 0); err != nil {
		t.Fatal(err)
	}
	s.hooks.metaWrite = func(*chunk) error { return syscall.EIO }
	if err := s.Commit(1, 9); err == nil {
		t.Fatal("Commit with a failing metadata write succeeded")
	}
	if info, _ := s.Info(1); info.Version != 0 {
		t.Fatalf("version %d after a failed Commit", info.Version)
	}
	s.hooks.metaWrite = nil
	if err := s.Commit(1, 9); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(2, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Commit of an unknown chunk: %v", err)
	}
	raw, err := os.ReadFile(s.metaPath(1))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := decodeHeader(raw); err != nil || !h.Clean || h.Version != 9 {
		t.Fatalf("header after Commit: %+v, %v (want clean, version 9)", h, err)
	}
	// A block known corrupt: committed, but not clean.
	if err := s.Create(3, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAt(3, data, 0); err != nil {
		t.Fatal(err)
	}
	c, _ := s.lookup(3)
	c.mu.Lock()
	s.markCorrupt(c, 1)
	c.mu.Unlock()
	if err := s.Commit(3, 2); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(s.metaPath(3)); err != nil {
		t.Fatal(err)
	} else if h, err := decodeHeader(raw); err != nil || h.Clean || h.Version != 2 {
		t.Fatalf("header of a corrupt chunk after Commit: %+v, %v (want dirty, version 2)", h, err)
	}
	s.Close()
	s = openT(t, dir, Options{ChunkSize: 1 << 20, ScrubRate: -1})
	defer s.Close()
	if info, err := s.Info(1); err != nil || info.Version != 9 || info.Length != int64(len(data)) {
		t.Fatalf("after reopen: %+v, %v", info, err)
	}
	checkChunk(t, s, 1, data)
}

// TestOpenLockedDir: a second Open of a store that is open fails, naming
// the directory and the holder, and changes nothing; after Close it opens.
func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{ScrubRate: -1})
	if err := s.Create(1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{ScrubRate: -1}); !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open: %v, want dirlock.ErrLocked naming %s", err, dir)
	}
	if _, err := s.Info(1); err != nil {
		t.Fatalf("first store after the refused Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{ScrubRate: -1})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer s2.Close()
	if _, err := s2.Info(1); err != nil {
		t.Fatal(err)
	}
}
