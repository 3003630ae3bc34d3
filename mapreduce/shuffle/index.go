package shuffle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// File names inside a map attempt's directory.
const (
	OutputName = "file.out"
	IndexName  = "file.out.index"
)

// MaxReduces bounds WriterOptions.Reduces and the partition count an index
// may claim.
const MaxReduces = 1 << 20

const (
	indexMagic       = "GSI1"
	indexHeaderBytes = 8
	extentBytes      = 32
)

// Extent is where one partition's segment lies in a map output file.
type Extent struct {
	Offset   int64
	Length   int64
	Checksum uint64 // xxhash64 of the segment's bytes
	Records  int64
}

func encodeIndex(exts []Extent) []byte {
	b := make([]byte, 0, indexHeaderBytes+extentBytes*len(exts)+8)
	b = append(b, indexMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(exts)))
	for _, e := range exts {
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Length))
		b = binary.LittleEndian.AppendUint64(b, e.Checksum)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.Records))
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

// DecodeIndex decodes an index file's bytes, checking its checksum, its
// size against the partition count it claims and that the extents are
// contiguous from offset 0.
func DecodeIndex(b []byte) ([]Extent, error) {
	if len(b) < indexHeaderBytes+8 {
		return nil, fmt.Errorf("index of %d bytes: %w", len(b), ErrCorrupt)
	}
	if string(b[:4]) != indexMagic {
		return nil, fmt.Errorf("index: bad magic %q: %w", b[:4], ErrCorrupt)
	}
	r := binary.LittleEndian.Uint32(b[4:8])
	if r == 0 || r > MaxReduces {
		return nil, fmt.Errorf("index: %d partitions: %w", r, ErrCorrupt)
	}
	if uint64(len(b)) != uint64(indexHeaderBytes)+uint64(r)*extentBytes+8 {
		return nil, fmt.Errorf("index: %d bytes for %d partitions: %w", len(b), r, ErrCorrupt)
	}
	body := b[:len(b)-8]
	if xxhash.Sum64(body) != binary.LittleEndian.Uint64(b[len(b)-8:]) {
		return nil, fmt.Errorf("index: checksum mismatch: %w", ErrCorrupt)
	}
	exts := make([]Extent, r)
	var next uint64
	for i := range exts {
		p := body[indexHeaderBytes+i*extentBytes:]
		off := binary.LittleEndian.Uint64(p[0:8])
		length := binary.LittleEndian.Uint64(p[8:16])
		records := binary.LittleEndian.Uint64(p[24:32])
		if off != next || length < uint64(emptySegmentBytes) || length > 1<<62 || records > length {
			return nil, fmt.Errorf("index: partition %d extent offset %d length %d records %d (want offset %d): %w",
				i, off, length, records, next, ErrCorrupt)
		}
		next = off + length
		if next > 1<<62 {
			return nil, fmt.Errorf("index: partition %d ends past 2^62: %w", i, ErrCorrupt)
		}
		exts[i] = Extent{Offset: int64(off), Length: int64(length), Checksum: binary.LittleEndian.Uint64(p[16:24]), Records: int64(records)}
	}
	return exts, nil
}

// ReadIndex reads the index of the map output in dir. A missing index (the
// attempt has not finished, or its output was removed) is an error wrapping
// ErrNotFound.
func ReadIndex(dir string) ([]Extent, error) {
	f, err := os.Open(filepath.Join(dir, IndexName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read index in %s: %w", dir, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	// Read one byte past the largest valid index so an oversized file is
	// rejected without reading it all.
	const maxIndexBytes = indexHeaderBytes + MaxReduces*extentBytes + 8
	b, err := io.ReadAll(io.LimitReader(f, maxIndexBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", f.Name(), err)
	}
	exts, err := DecodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return exts, nil
}

// writeIndex writes the index under a temporary name and renames it into
// place: the rename publishes the output (see doc.go).
func writeIndex(dir string, exts []Extent) error {
	tmp := filepath.Join(dir, IndexName+".tmp")
	if err := os.WriteFile(tmp, encodeIndex(exts), 0o644); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, IndexName)); err != nil {
		return fmt.Errorf("publish index: %w", err)
	}
	return nil
}
