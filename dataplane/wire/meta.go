package wire

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed reports metadata that does not decode: short, with trailing
// bytes, or with an over-cap count or string.
var ErrMalformed = errors.New("wire: malformed metadata")

// Caps on counted metadata fields.
const (
	// MaxAddr caps an address string (HOST:PORT).
	MaxAddr = 255
	// MaxChain caps the number of addresses in a chain.
	MaxChain = 16
	// MaxMessage caps an error message.
	MaxMessage = 1 << 10
	// MaxSums caps the checksums of a read response: a MaxPayload range.
	MaxSums = MaxPayload/(64<<10) + 1
	// MaxApplyOps caps the mutations of one apply batch.
	MaxApplyOps = 1 << 10
)

// enc appends little-endian fields; it never fails.
type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.LittleEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) str(s string) {
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}
func (e *enc) strs(ss []string) {
	e.u8(uint8(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

// dec reads little-endian fields; the first failure sticks in err and makes
// every later read return zero.
type dec struct {
	b   []byte
	err error
}

func (d *dec) need(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = ErrMalformed
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *dec) u8() uint8 {
	if p := d.need(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if p := d.need(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if p := d.need(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if p := d.need(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *dec) str(max int) string {
	n := int(d.u16())
	if n > max {
		d.err = ErrMalformed
		return ""
	}
	p := d.need(n)
	if p == nil {
		return ""
	}
	return string(p)
}

// strs decodes a counted list of addresses into dst[:0].
func (d *dec) strs(dst []string) []string {
	n := int(d.u8())
	if n > MaxChain {
		d.err = ErrMalformed
		return dst[:0]
	}
	dst = dst[:0]
	for i := 0; i < n && d.err == nil; i++ {
		dst = append(dst, d.str(MaxAddr))
	}
	return dst
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = ErrMalformed
	}
	return d.err
}

// PushID names one push: collision-free as long as every client picks a
// distinct Client and never reuses a Seq.
type PushID struct {
	Client uint64
	Seq    uint64
}

// ReadRequest asks for [Offset, Offset+Length) of a chunk. Version 0 skips
// the version check; otherwise a replica older than Version refuses.
type ReadRequest struct {
	Handle  uint64
	Version uint64
	Offset  int64
	Length  int64
}

// Append encodes r after b.
func (r *ReadRequest) Append(b []byte) []byte {
	e := enc{b}
	e.u64(r.Handle)
	e.u64(r.Version)
	e.u64(uint64(r.Offset))
	e.u64(uint64(r.Length))
	return e.b
}

// Decode decodes r from b.
func (r *ReadRequest) Decode(b []byte) error {
	d := dec{b: b}
	r.Handle, r.Version = d.u64(), d.u64()
	r.Offset, r.Length = int64(d.u64()), int64(d.u64())
	return d.done()
}

// ReadResponse precedes the payload of a read: the payload holds the chunk
// bytes [RangeOffset, RangeOffset+payload length), block aligned at the
// start, and Sums holds one xxhash64 per 64 KiB block of it (the last over
// a partial block).
type ReadResponse struct {
	ChunkLength int64
	RangeOffset int64
	Sums        []uint64
}

// Append encodes r after b.
func (r *ReadResponse) Append(b []byte) []byte {
	e := enc{b}
	e.u64(uint64(r.ChunkLength))
	e.u64(uint64(r.RangeOffset))
	e.u32(uint32(len(r.Sums)))
	for _, s := range r.Sums {
		e.u64(s)
	}
	return e.b
}

// Decode decodes r from b, reusing r.Sums' storage.
func (r *ReadResponse) Decode(b []byte) error {
	d := dec{b: b}
	r.ChunkLength, r.RangeOffset = int64(d.u64()), int64(d.u64())
	n := int(d.u32())
	if n > MaxSums || n*8 > len(d.b) {
		return ErrMalformed
	}
	r.Sums = r.Sums[:0]
	for i := 0; i < n; i++ {
		r.Sums = append(r.Sums, d.u64())
	}
	return d.done()
}

// LengthRequest asks for a chunk's length (Version as in ReadRequest).
type LengthRequest struct {
	Handle  uint64
	Version uint64
}

// Append encodes r after b.
func (r *LengthRequest) Append(b []byte) []byte {
	e := enc{b}
	e.u64(r.Handle)
	e.u64(r.Version)
	return e.b
}

// Decode decodes r from b.
func (r *LengthRequest) Decode(b []byte) error {
	d := dec{b: b}
	r.Handle, r.Version = d.u64(), d.u64()
	return d.done()
}

// LengthResponse answers a LengthRequest.
type LengthResponse struct {
	Length  int64
	Version uint64
}

// Append encodes r after b.
func (r *LengthResponse) Append(b []byte) []byte {
	e := enc{b}
	e.u64(uint64(r.Length))
	e.u64(r.Version)
	return e.b
}

// Decode decodes r from b.
func (r *LengthResponse) Decode(b []byte) error {
	d := dec{b: b}
	r.Length, r.Version = int64(d.u64()), d.u64()
	return d.done()
}

// PushRequest precedes pushed data (the frame's payload). The receiver
// buffers the data under ID and forwards the frame to Downstream[0] with
// Downstream[1:] as that replica's downstream, packet by packet as it
// arrives. DataSum is the xxhash64 of the whole payload, checked by every
// replica.
type PushRequest struct {
	ID         PushID
	DataSum    uint64
	Downstream []string
}

// Append encodes r after b.
func (r *PushRequest) Append(b []byte) []byte {
	e := enc{b}
	e.u64(r.ID.Client)
	e.u64(r.ID.Seq)
	e.u64(r.DataSum)
	e.strs(r.Downstream)
	return e.b
}

// Decode decodes r from b, reusing r.Downstream's storage.
func (r *PushRequest) Decode(b []byte) error {
	d := dec{b: b}
	r.ID.Client, r.ID.Seq = d.u64(), d.u64()
	r.DataSum = d.u64()
	r.Downstream = d.strs(r.Downstream)
	return d.done()
}

// MutationRequest is a write (OpWrite) or record append (OpAppend) sent to
// the primary. With FlagInline the data is the frame's payload (and DataSum
// its xxhash64); otherwise it was pushed under ID and Length says how long
// it is. Offset is ignored for appends. Secondaries lists the other
// replicas, which the primary has apply the mutation in its serial order.
type MutationRequest struct {
	Handle      uint64
	Version     uint64
	Offset      int64
	Length      int64
	ID          PushID
	DataSum     uint64
	Secondaries []string
}

// Append encodes r after b.
func (r *MutationRequest) Append(b []byte) []byte {
	e := enc{b}
	e.u64(r.Handle)
	e.u64(r.Version)
	e.u64(uint64(r.Offset))
	e.u64(uint64(r.Length))
	e.u64(r.ID.Client)
	e.u64(r.ID.Seq)
	e.u64(r.DataSum)
	e.strs(r.Secondaries)
	return e.b
}

// Decode decodes r from b, reusing r.Secondaries' storage.
func (r *MutationRequest) Decode(b []byte) error {
	d := dec{b: b}
	r.Handle, r.Version = d.u64(), d.u64()
	r.Offset, r.Length = int64(d.u64()), int64(d.u64())
	r.ID.Client, r.ID.Seq = d.u64(), d.u64()
	r.DataSum = d.u64()
	r.Secondaries = d.strs(r.Secondaries)
	return d.done()
}

// MutationResponse answers a MutationRequest: Offset is where an append
// landed (the write's offset for writes).
type MutationResponse struct {
	Offset int64
}

// Append encodes r after b.
func (r *MutationResponse) Append(b []byte) []byte {
	e := enc{b}
	e.u64(uint64(r.Offset))
	return e.b
}

// Decode decodes r from b.
func (r *MutationResponse) Decode(b []byte) error {
	d := dec{b: b}
	r.Offset = int64(d.u64())
	return d.done()
}

// ApplyKind is the kind of one mutation in an apply batch.
type ApplyKind uint8

// Apply kinds.
const (
	// ApplyInline writes Length bytes taken from the frame payload (the
	// inline ops' bytes follow each other in op order) at Offset.
	ApplyInline ApplyKind = 1
	// ApplyPushed writes the data pushed under ID (Length bytes) at Offset.
	ApplyPushed ApplyKind = 2
	// ApplyPad extends the chunk with zeros to Offset (record append that
	// did not fit).
	ApplyPad ApplyKind = 3
)

// ApplyOp is one mutation of an apply batch.
type ApplyOp struct {
	Kind   ApplyKind
	Offset int64
	Length int64
	ID     PushID
}

// ApplyRequest carries a batch of mutations, in the primary's serial order,
// from the primary (Primary is its address as the chain knows it) to a
// secondary. Serial is the primary's number of the batch's first mutation.
type ApplyRequest struct {
	Handle  uint64
	Version uint64
	Serial  uint64
	Primary string
	Ops     []ApplyOp
}

// Append encodes r after b.
func (r *ApplyRequest) Append(b []byte) []byte {
	e := enc{b}
	e.u64(r.Handle)
	e.u64(r.Version)
	e.u64(r.Serial)
	e.str(r.Primary)
	e.u16(uint16(len(r.Ops)))
	for i := range r.Ops {
		op := &r.Ops[i]
		e.u8(uint8(op.Kind))
		e.u64(uint64(op.Offset))
		e.u64(uint64(op.Length))
		e.u64(op.ID.Client)
		e.u64(op.ID.Seq)
	}
	return e.b
}

// Decode decodes r from b, reusing r.Ops' storage. Kinds are checked.
func (r *ApplyRequest) Decode(b []byte) error {
	d := dec{b: b}
	r.Handle, r.Version, r.Serial = d.u64(), d.u64(), d.u64()
	r.Primary = d.str(MaxAddr)
	n := int(d.u16())
	if n > MaxApplyOps {
		return ErrMalformed
	}
	r.Ops = r.Ops[:0]
	for i := 0; i < n && d.err == nil; i++ {
		op := ApplyOp{Kind: ApplyKind(d.u8()), Offset: int64(d.u64()), Length: int64(d.u64())}
		op.ID.Client, op.ID.Seq = d.u64(), d.u64()
		if op.Kind < ApplyInline || op.Kind > ApplyPad {
			return ErrMalformed
		}
		r.Ops = append(r.Ops, op)
	}
	return d.done()
}

// ErrorResponse is the metadata of a response whose status is not OK.
// Replica names the replica that failed when it is not the one answering
// (a secondary or a downstream chain member); Message says what happened.
type ErrorResponse struct {
	Replica string
	Message string
}

// Append encodes r after b, truncating over-cap strings.
func (r *ErrorResponse) Append(b []byte) []byte {
	e := enc{b}
	rep, msg := r.Replica, r.Message
	if len(rep) > MaxAddr {
		rep = rep[:MaxAddr]
	}
	if len(msg) > MaxMessage {
		msg = msg[:MaxMessage]
	}
	e.str(rep)
	e.str(msg)
	return e.b
}

// Decode decodes r from b.
func (r *ErrorResponse) Decode(b []byte) error {
	d := dec{b: b}
	r.Replica = d.str(MaxAddr)
	r.Message = d.str(MaxMessage)
	return d.done()
}
