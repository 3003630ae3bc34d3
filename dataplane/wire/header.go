package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Magic opens every frame: the bytes "GFSD" on the wire. It differs from the
// HTTP/2 client preface ("PRI * HTTP/2.0"), which lets one port serve both
// the data channel and gRPC.
const Magic uint32 = 'G' | 'F'<<8 | 'S'<<16 | 'D'<<24

// TLSMagic opens a data connection encrypted with TLS (-data-tls): the
// bytes "GFST" in the clear, then a TLS 1.3 handshake, then frames inside
// the TLS stream. It differs from Magic, the HTTP/2 preface and a TLS
// record, so the one port still tells the kinds of connections apart.
var TLSMagic = [4]byte{'G', 'F', 'S', 'T'}

// Version is the protocol version this package speaks.
const Version uint8 = 1

// HeaderSize is the fixed size of a frame header in bytes.
const HeaderSize = 32

// Hard caps on the variable parts of a frame. DecodeHeader rejects larger
// lengths before anything is read or allocated.
const (
	// MaxCapability caps the capability token.
	MaxCapability = 1 << 10
	// MaxMeta caps the operation metadata (a read response's checksum list
	// of a 64 MiB range is 8 KiB).
	MaxMeta = 64 << 10
	// MaxPayload caps the payload: one chunk.
	MaxPayload = 64 << 20
)

// Op is a frame's operation code.
type Op uint8

// Opcodes. A response carries the opcode of its request and FlagResponse.
const (
	OpRead   Op = 1 // read a byte range with its block checksums
	OpLength Op = 2 // current length and version of a chunk
	OpPush   Op = 3 // push data into the chain's buffers (forwarded downstream)
	OpWrite  Op = 4 // write pushed (or inline) data at an offset; to the primary
	OpAppend Op = 5 // record append; to the primary
	OpApply  Op = 6 // primary -> secondary: apply mutations in serial order
	maxOp    Op = OpApply
)

var opNames = [...]string{"op0", "read", "length", "push", "write", "append", "apply"}

// String returns the opcode's lower-case name.
func (o Op) String() string {
	if o <= maxOp {
		return opNames[o]
	}
	return fmt.Sprintf("op%d", uint8(o))
}

// Valid reports whether o is a known opcode.
func (o Op) Valid() bool { return o >= OpRead && o <= maxOp }

// Flags of a frame.
const (
	// FlagResponse marks a response frame.
	FlagResponse uint16 = 1 << 0
	// FlagSync asks for fdatasync on every replica before the answer.
	FlagSync uint16 = 1 << 1
	// FlagInline says the mutation's data travels as this frame's payload
	// instead of having been pushed beforehand.
	FlagInline uint16 = 1 << 2
	knownFlags        = FlagResponse | FlagSync | FlagInline
)

// Header is the decoded fixed part of a frame.
type Header struct {
	Op         Op
	Flags      uint16
	RequestID  uint64
	Status     Status // responses only; 0 in requests
	CapLen     uint16
	MetaLen    uint32
	PayloadLen uint32
}

// Errors returned by DecodeHeader. Each means the stream cannot be trusted
// any more: close the connection.
var (
	ErrBadMagic       = errors.New("wire: bad magic")
	ErrBadVersion     = errors.New("wire: unsupported protocol version")
	ErrHeaderChecksum = errors.New("wire: header checksum mismatch")
	ErrUnknownOp      = errors.New("wire: unknown opcode")
	ErrTooLong        = errors.New("wire: length over cap")
	ErrBadFlags       = errors.New("wire: unknown flags")
	ErrShortHeader    = errors.New("wire: short header")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode writes h into b[:HeaderSize], with the magic, version and checksum.
func (h *Header) Encode(b []byte) {
	_ = b[HeaderSize-1]
	binary.LittleEndian.PutUint32(b[0:], Magic)
	b[4] = Version
	b[5] = uint8(h.Op)
	binary.LittleEndian.PutUint16(b[6:], h.Flags)
	binary.LittleEndian.PutUint64(b[8:], h.RequestID)
	binary.LittleEndian.PutUint16(b[16:], h.CapLen)
	binary.LittleEndian.PutUint16(b[18:], uint16(h.Status))
	binary.LittleEndian.PutUint32(b[20:], h.MetaLen)
	binary.LittleEndian.PutUint32(b[24:], h.PayloadLen)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// DecodeHeader parses and validates a header from b (at least HeaderSize
// bytes). The checks run in wire order: magic, version, checksum, then
// opcode, flags and length caps; the first failure is returned.
func DecodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShortHeader
	}
	if binary.LittleEndian.Uint32(b[0:]) != Magic {
		return Header{}, ErrBadMagic
	}
	if b[4] != Version {
		return Header{}, ErrBadVersion
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return Header{}, ErrHeaderChecksum
	}
	h := Header{
		Op:         Op(b[5]),
		Flags:      binary.LittleEndian.Uint16(b[6:]),
		RequestID:  binary.LittleEndian.Uint64(b[8:]),
		CapLen:     binary.LittleEndian.Uint16(b[16:]),
		Status:     Status(binary.LittleEndian.Uint16(b[18:])),
		MetaLen:    binary.LittleEndian.Uint32(b[20:]),
		PayloadLen: binary.LittleEndian.Uint32(b[24:]),
	}
	if !h.Op.Valid() {
		return h, ErrUnknownOp
	}
	if h.Flags&^knownFlags != 0 {
		return h, ErrBadFlags
	}
	if h.CapLen > MaxCapability || h.MetaLen > MaxMeta || h.PayloadLen > MaxPayload {
		return h, ErrTooLong
	}
	return h, nil
}
