package client

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Record framing for at-least-once record append (GFS 3.3). The format is
// specified in docs/client.md; in short, every record is
//
//	offset size field
//	0      4    magic "GFSR"
//	4      4    payload length (little endian)
//	8      8    writer id: the appending client's random 64-bit id
//	16     8    sequence number within that writer (starts at 1)
//	24     8    xxhash64 of bytes [0,24) followed by the payload
//	32     n    payload
//
// The magic is never zero, so the zero padding a primary writes at a chunk's
// end never parses as a record; the checksum covers the header, so a torn or
// partially overwritten record never parses either; (writer id, sequence)
// names a record uniquely, so a reader drops the duplicates client retries
// leave behind.

// RecordHeaderSize is the number of framing bytes in front of each record's
// payload.
const RecordHeaderSize = 32

// recordMagic is "GFSR" read as a little-endian uint32.
const recordMagic = uint32('G') | uint32('F')<<8 | uint32('S')<<16 | uint32('R')<<24

// MaxRecordPayload bounds a record's payload independently of the chunk size:
// the length field is a uint32 and no chunk is larger than 64 MiB, so a
// quarter chunk is at most 16 MiB.
const MaxRecordPayload = 16<<20 - RecordHeaderSize

// ErrRecordTooLarge is returned when a record does not fit in a quarter chunk
// (GFS 3.3: record appends are limited to a quarter of the chunk size so that
// padding wastes at most that much).
var ErrRecordTooLarge = errors.New("gfs: record too large")

// RecordID names one record uniquely: the appending client's id and the
// sequence number that client gave the record.
type RecordID struct {
	Writer   uint64
	Sequence uint64
}

// String formats the id as writer:sequence in hex.
func (id RecordID) String() string { return fmt.Sprintf("%016x:%d", id.Writer, id.Sequence) }

// EncodeRecord appends the framed form of payload to dst and returns the
// extended slice.
func EncodeRecord(dst []byte, id RecordID, payload []byte) ([]byte, error) {
	if len(payload) > MaxRecordPayload {
		return dst, fmt.Errorf("%w: %d bytes (max %d)", ErrRecordTooLarge, len(payload), MaxRecordPayload)
	}
	start := len(dst)
	dst = append(dst, make([]byte, RecordHeaderSize)...)
	h := dst[start : start+RecordHeaderSize]
	binary.LittleEndian.PutUint32(h[0:], recordMagic)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], id.Writer)
	binary.LittleEndian.PutUint64(h[16:], id.Sequence)
	binary.LittleEndian.PutUint64(h[24:], recordSum(h[:24], payload))
	return append(dst, payload...), nil
}

func recordSum(head, payload []byte) uint64 {
	d := xxhash.New()
	d.Write(head)
	d.Write(payload)
	return d.Sum64()
}

// parseResult says what parseRecord found at the start of a buffer.
type parseResult int

const (
	parseOK       parseResult = iota // a whole, valid record
	parseNeedMore                    // looks like a record, but the buffer ends first
	parseBad                         // not a record starting here
)

// parseRecord checks whether buf starts with a valid record. It returns the
// record's id, payload (aliasing buf) and total framed size when it does.
// maxPayload bounds the length field (a larger value is not a record).
func parseRecord(buf []byte, maxPayload int) (RecordID, []byte, int, parseResult) {
	if len(buf) < 4 {
		if len(buf) == 0 || !magicPrefix(buf) {
			return RecordID{}, nil, 0, parseBad
		}
		return RecordID{}, nil, 0, parseNeedMore
	}
	if binary.LittleEndian.Uint32(buf) != recordMagic {
		return RecordID{}, nil, 0, parseBad
	}
	if len(buf) < 8 {
		return RecordID{}, nil, 0, parseNeedMore
	}
	n := int(binary.LittleEndian.Uint32(buf[4:]))
	if n > maxPayload {
		return RecordID{}, nil, 0, parseBad
	}
	total := RecordHeaderSize + n
	if len(buf) < total {
		return RecordID{}, nil, 0, parseNeedMore
	}
	if binary.LittleEndian.Uint64(buf[24:]) != recordSum(buf[:24], buf[RecordHeaderSize:total]) {
		return RecordID{}, nil, 0, parseBad
	}
	id := RecordID{Writer: binary.LittleEndian.Uint64(buf[8:]), Sequence: binary.LittleEndian.Uint64(buf[16:])}
	return id, buf[RecordHeaderSize:total], total, parseOK
}

// magicPrefix reports whether the short buf is a prefix of the magic.
func magicPrefix(buf []byte) bool {
	var m [4]byte
	binary.LittleEndian.PutUint32(m[:], recordMagic)
	for i, b := range buf {
		if m[i] != b {
			return false
		}
	}
	return true
}
