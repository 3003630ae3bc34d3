// Package journal is the MapReduce coordinator's write-ahead journal: an
// append-only file of framed records, each synced before Append returns,
// replayed in order when the coordinator restarts with the same -dir.
//
// Frame layout (little endian):
//
//	offset size field
//	0      4    magic "MRJ1"
//	4      4    payload length n (<= MaxRecordBytes)
//	8      4    ^n, so a damaged length is told from a torn frame
//	12     8    xxhash64 of the payload
//	20     n    payload (the caller's bytes, JSON in the coordinator)
//
// A crash can leave at most one torn frame at the end (the one being
// written when the process died, never acknowledged): Open drops it and
// truncates the file there. A bad frame followed by good ones is not a torn
// tail but damage, and Open refuses the file rather than silently forgetting
// acknowledged records.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// MaxRecordBytes bounds one record's payload.
const MaxRecordBytes = 16 << 20

const headerSize = 20

var magic = [4]byte{'M', 'R', 'J', '1'}

// ErrCorrupt reports a journal damaged before its last record.
var ErrCorrupt = errors.New("journal: corrupt")

// ErrTooLarge reports a record over MaxRecordBytes.
var ErrTooLarge = errors.New("journal: record too large")

// Journal is an open journal file. Append is safe for concurrent use.
type Journal struct {
	mu sync.Mutex // guards f
	f  *os.File
}

// Open opens (creating) the journal at path and returns it with the records
// it holds, in append order.
func Open(path string) (*Journal, [][]byte, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	recs, good, err := Decode(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("journal %s: drop torn tail: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return &Journal{f: f}, recs, nil
}

// Decode parses a journal's bytes: the records, and the length of the
// prefix holding whole frames. Bytes after that prefix are a torn tail
// when they could be the start of one frame that was being written; any
// other damage is ErrCorrupt.
func Decode(data []byte) (recs [][]byte, good int, err error) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < headerSize {
			if !bytes.HasPrefix(magic[:], rest[:min(len(rest), 4)]) {
				return nil, 0, fmt.Errorf("%w: garbage at offset %d", ErrCorrupt, off)
			}
			return recs, off, nil // torn header
		}
		if !bytes.Equal(rest[:4], magic[:]) {
			return nil, 0, fmt.Errorf("%w: bad magic at offset %d", ErrCorrupt, off)
		}
		n := binary.LittleEndian.Uint32(rest[4:8])
		if ^n != binary.LittleEndian.Uint32(rest[8:12]) || n > MaxRecordBytes {
			return nil, 0, fmt.Errorf("%w: bad length at offset %d", ErrCorrupt, off)
		}
		if len(rest) < headerSize+int(n) {
			return recs, off, nil // torn payload
		}
		payload := rest[headerSize : headerSize+int(n)]
		if xxhash.Sum64(payload) != binary.LittleEndian.Uint64(rest[12:20]) {
			if off+headerSize+int(n) == len(data) {
				return recs, off, nil // last frame, torn mid-payload
			}
			return nil, 0, fmt.Errorf("%w: checksum mismatch at offset %d", ErrCorrupt, off)
		}
		recs = append(recs, payload)
		off += headerSize + int(n)
	}
	return recs, off, nil
}

// Encode appends the frame of payload to dst.
func Encode(dst, payload []byte) ([]byte, error) {
	if len(payload) > MaxRecordBytes {
		return dst, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(payload))
	}
	dst = append(dst, magic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, ^uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint64(dst, xxhash.Sum64(payload))
	return append(dst, payload...), nil
}

// Append writes one record and syncs it to disk.
func (j *Journal) Append(payload []byte) error {
	frame, err := Encode(make([]byte, 0, headerSize+len(payload)), payload)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal: closed")
	}
	if _, err := j.f.Write(frame); err != nil {
		return fmt.Errorf("journal: append: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// Close closes the file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
