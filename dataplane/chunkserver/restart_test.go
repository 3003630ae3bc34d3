package chunkserver

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

// tearChunk makes chunk h in the (closed) store in dir look like a write
// torn by kill -9: a byte of block 0 flipped and the header's clean flag
// cleared (so Open verifies every block). The header layout is the one in
// dataplane/store/format.go: flags at byte 32, CRC-32C of [0, 60) at 60.
func tearChunk(t *testing.T, dir string, h store.Handle) {
	t.Helper()
	name := filepath.Join(dir, fmtHandle(h))
	meta, err := os.ReadFile(name + ".meta")
	if err != nil {
		t.Fatal(err)
	}
	flags := binary.LittleEndian.Uint32(meta[32:])
	binary.LittleEndian.PutUint32(meta[32:], flags&^1)
	binary.LittleEndian.PutUint32(meta[60:], crc32.Checksum(meta[:60], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(name+".meta", meta, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name+".chunk", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], 100); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], 100); err != nil {
		t.Fatal(err)
	}
}

func fmtHandle(h store.Handle) string {
	const hex = "0123456789abcdef"
	var b [16]byte
	for i := range b {
		b[15-i] = hex[(uint64(h)>>(4*i))&0xf]
	}
	return string(b[:])
}

// TestNewWithTornChunk: a chunk torn by a crash is found when New opens
// the store. The store reports it through the OnCorrupt hook while New is
// still constructing the server (issue 15, defect 2: that hook used to
// panic on the change tracker's nil maps, and the server could never start
// again). The server must come up, list the chunk as corrupt for its next
// report to the master, pass the report on to the caller's own hook, and
// refuse to serve the torn block; an intact chunk beside it still serves.
func TestNewWithTornChunk(t *testing.T) {
	noLeaks(t)
	dir := t.TempDir()
	const torn, intact = store.Handle(0x51), store.Handle(0x52)
	st, err := store.Open(dir, store.Options{ChunkSize: testChunkSize, ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 200<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, h := range []store.Handle{torn, intact} {
		if err := st.Create(h, 3); err != nil {
			t.Fatal(err)
		}
		if err := st.WriteAt(h, data, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	tearChunk(t, dir, torn)
	// A chunk whose metadata does not decode at all (block -1).
	if err := os.WriteFile(filepath.Join(dir, fmtHandle(0x53)+".meta"), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fmtHandle(0x53)+".chunk"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	reported := map[store.Handle][]int{}
	s := startServer(t, func(o *Options) {
		o.Dir = dir
		o.Store.OnCorrupt = func(h store.Handle, blocks []int) {
			mu.Lock()
			reported[h] = append(reported[h], blocks...)
			mu.Unlock()
		}
	})
	mu.Lock()
	if len(reported[torn]) != 1 || reported[torn][0] != 0 || len(reported[0x53]) != 1 || reported[0x53][0] != -1 || len(reported[intact]) != 0 {
		t.Errorf("OnCorrupt saw %v, want chunk %x block 0 and chunk 53 block -1", reported, torn)
	}
	mu.Unlock()
	changed, _, _ := s.tracker.take()
	for _, h := range []store.Handle{torn, 0x53} {
		if _, ok := changed[h]; !ok {
			t.Errorf("chunk %x found corrupt at start is not queued for the next report (%v)", h, changed)
		}
		info, err := s.Store().Info(h)
		if err != nil || !info.Corrupt {
			t.Errorf("chunk %x: Info %+v, %v; want Corrupt", h, info, err)
		}
	}
	dc := newClient(t)
	buf := make([]byte, 4096)
	_, err = dc.Read(context.Background(), s.Addr(), uint64(torn), 3, 0, buf)
	if err == nil || !errors.Is(err, dataclient.ErrChecksum) {
		t.Errorf("read of the torn block: %v, want ErrChecksum", err)
	}
	n, err := dc.Read(context.Background(), s.Addr(), uint64(intact), 3, 0, buf)
	if err != nil || n != len(buf) || buf[1] != data[1] {
		t.Errorf("read of the intact chunk: %d, %v", n, err)
	}
}
