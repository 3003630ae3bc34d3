// Package wire defines the frame format of the GFS-Go data channel: the
// binary protocol that clients and chunkservers speak over TCP on a
// chunkserver's data port (docs/protocol.md is the normative description).
//
// Every frame is a fixed 32-byte little-endian Header followed by three
// variable parts whose lengths the header announces:
//
//	Header | capability (CapLen) | metadata (MetaLen) | payload (PayloadLen)
//
// Invariants the package keeps:
//
//   - DecodeHeader accepts a header only when the magic, protocol version,
//     header checksum (CRC-32C over bytes 0..27), opcode and every length
//     cap check out. A reader therefore never allocates or waits for more
//     than MaxCapability+MaxMeta+MaxPayload bytes on behalf of a peer, and a
//     header that fails any check says nothing trustworthy about the stream:
//     the connection must be closed.
//   - Metadata encoders append to a caller-owned buffer and decoders read
//     from one, so the per-packet path allocates nothing; decoders reject
//     trailing bytes, short input and over-cap counts with ErrMalformed.
//   - The capability bytes are opaque here: from protocol version 1 every
//     request may carry a master-issued token (issue 8 enforces it).
package wire
