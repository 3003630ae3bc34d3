package master

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op log and checkpoint record types. A record is one type byte followed by
// its fields: unsigned varints, and strings as varint length + bytes.
// Changing a record's layout means a new type; old types stay decodable.
const (
	opReserve  byte = 1 // ceiling: handles below it may have been handed out
	opMkdir    byte = 2 // path, parents, mtime
	opCreate   byte = 3 // path, replication, parents, mtime
	opDelete   byte = 4 // path, recursive, trash id, mtime
	opRename   byte = 5 // src, dst, mtime
	opAddChunk byte = 6 // path, index, handle, version
	opVersion  byte = 7 // handle, version
	opReclaim  byte = 8 // trash id
	// opRequest wraps a namespace mutation with the request id that asked
	// for it: id, at ms, call fingerprint, inner record. Applying it applies
	// the inner record and remembers the id (requests.go), atomically.
	opRequest byte = 9

	ckHeader  byte = 64 // handle ceiling, next trash id
	ckDir     byte = 65 // path, mtime
	ckFile    byte = 66 // path, replication, mtime, n, n x (handle, version)
	ckTrash   byte = 67 // id, path, deleted ms, n, n x (handle, version, replication)
	ckRequest byte = 68 // request id, at ms, call fingerprint (a remembered success)
)

// errDecode reports a malformed record (replay treats it as corruption).
var errDecode = errors.New("malformed record")

type enc struct{ b []byte }

func (e *enc) u(v uint64) *enc { e.b = binary.AppendUvarint(e.b, v); return e }
func (e *enc) i(v int64) *enc  { e.b = binary.AppendVarint(e.b, v); return e }
func (e *enc) s(v string) *enc { e.u(uint64(len(v))); e.b = append(e.b, v...); return e }
func (e *enc) bool(v bool) *enc {
	if v {
		return e.u(1)
	}
	return e.u(0)
}

func newRec(t byte) *enc { return &enc{b: []byte{t}} }

type dec struct {
	b   []byte
	err error
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errDecode
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errDecode
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) s() string {
	n := d.u()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errDecode
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *dec) bool() bool {
	v := d.u()
	if v > 1 {
		d.err = errDecode
	}
	return v == 1
}

// count reads an element count, bounded by the bytes left (each element
// takes at least min bytes), so a corrupt count cannot make us allocate.
func (d *dec) count(min int) int {
	n := d.u()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = errDecode
	}
	if d.err != nil {
		return 0 // never a corrupt count to allocate by
	}
	return int(n)
}

// done reports the decode error, or errDecode if bytes are left over.
func (d *dec) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errDecode, len(d.b))
	}
	return nil
}
