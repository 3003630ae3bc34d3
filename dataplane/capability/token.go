package capability

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Op is a bitmask of the data-channel operations a capability allows.
type Op uint8

// The operations a capability can allow.
const (
	// OpRead allows reading data and the chunk's length.
	OpRead Op = 1 << iota
	// OpWrite allows pushing data and writing it at an offset.
	OpWrite
	// OpAppend allows pushing data and record-appending it.
	OpAppend
	// OpCopy allows a chunkserver to copy the whole chunk (re-replication).
	OpCopy
	// OpApply allows a primary to send its secondaries apply rounds of the
	// chunk's mutations. The master gives it only to primaries (in
	// GrantLease and lease extensions), never to clients.
	OpApply

	// opAll is every defined operation.
	opAll = OpRead | OpWrite | OpAppend | OpCopy | OpApply
)

// String lists the operations ("read|append"), "none" for the empty set.
func (o Op) String() string {
	if o == 0 {
		return "none"
	}
	var parts []string
	for _, x := range []struct {
		op   Op
		name string
	}{{OpRead, "read"}, {OpWrite, "write"}, {OpAppend, "append"}, {OpCopy, "copy"}, {OpApply, "apply"}} {
		if o&x.op != 0 {
			parts = append(parts, x.name)
		}
	}
	if rest := o &^ opAll; rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%02x", uint8(rest)))
	}
	return strings.Join(parts, "|")
}

// Encoding: little-endian, no padding, as the rest of the data channel.
//
//	0  u8  format version (Version)
//	1  u8  operations (Op)
//	2  u16 reserved, zero
//	4  u32 key id
//	8  u64 chunk handle
//	16 u64 client id
//	24 i64 expiry, Unix nanoseconds
//	32 [32] HMAC-SHA256(key, bytes 0..31)
const (
	// Version is the token format version this package writes and accepts.
	Version = 1
	// bodySize is the signed part of a token.
	bodySize = 32
	// MACSize is the length of the HMAC-SHA256 tag.
	MACSize = 32
	// Size is the encoded length of every token.
	Size = bodySize + MACSize
)

// ErrMalformed reports bytes that are not a token of this format.
var ErrMalformed = errors.New("capability: malformed token")

// Capability is a decoded token. Its MAC is only meaningful once a Verifier
// has checked it; fields of an unverified Capability must not be trusted.
type Capability struct {
	Handle   uint64    // the one chunk it grants access to
	Ops      Op        // operations allowed on that chunk
	Expiry   time.Time // not accepted at or after this instant
	KeyID    uint32    // key that signed it
	ClientID uint64    // client it was issued to (informational; 0 = any)
	MAC      [MACSize]byte
}

// String describes the capability without its MAC (a bearer secret).
func (c Capability) String() string {
	return fmt.Sprintf("capability{chunk %016x ops %s expiry %s key %d client %016x}",
		c.Handle, c.Ops, c.Expiry.UTC().Format(time.RFC3339Nano), c.KeyID, c.ClientID)
}

// GoString is String: %#v must not print the MAC either.
func (c Capability) GoString() string { return c.String() }

// appendBody appends the signed 32-byte body of c to b.
func (c *Capability) appendBody(b []byte) []byte {
	b = append(b, Version, byte(c.Ops), 0, 0)
	b = binary.LittleEndian.AppendUint32(b, c.KeyID)
	b = binary.LittleEndian.AppendUint64(b, c.Handle)
	b = binary.LittleEndian.AppendUint64(b, c.ClientID)
	return binary.LittleEndian.AppendUint64(b, uint64(c.Expiry.UnixNano()))
}

// Append appends c's encoding (Size bytes) to b.
func (c *Capability) Append(b []byte) []byte {
	b = c.appendBody(b)
	return append(b, c.MAC[:]...)
}

// Decode parses a token. It checks the format only (length, version,
// reserved bits, known operations), not the MAC: see Verifier.
func Decode(b []byte) (Capability, error) {
	var c Capability
	if len(b) != Size {
		return c, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), Size)
	}
	if b[0] != Version {
		return c, fmt.Errorf("%w: format version %d, want %d", ErrMalformed, b[0], Version)
	}
	if b[2] != 0 || b[3] != 0 {
		return c, fmt.Errorf("%w: reserved bytes set", ErrMalformed)
	}
	c.Ops = Op(b[1])
	if c.Ops&^opAll != 0 {
		return c, fmt.Errorf("%w: unknown operation bits 0x%02x", ErrMalformed, uint8(c.Ops&^opAll))
	}
	c.KeyID = binary.LittleEndian.Uint32(b[4:])
	c.Handle = binary.LittleEndian.Uint64(b[8:])
	c.ClientID = binary.LittleEndian.Uint64(b[16:])
	c.Expiry = time.Unix(0, int64(binary.LittleEndian.Uint64(b[24:])))
	copy(c.MAC[:], b[bodySize:])
	return c, nil
}
