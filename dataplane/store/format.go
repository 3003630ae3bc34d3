package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cespare/xxhash/v2"
)

// On-disk format of a chunk's .meta file (all integers little-endian):
//
//	header, 64 bytes:
//	  0  [8]byte  magic "GFSCHUNK"
//	  8  uint16   format version (1)
//	  10 uint16   block checksum algorithm (1 = xxhash64, seed 0)
//	  12 uint32   block size in bytes (65536)
//	  16 uint64   chunk handle
//	  24 uint64   chunk version
//	  32 uint32   flags (bit 0: clean, see doc.go)
//	  36 [24]byte reserved, zero
//	  60 uint32   CRC-32C of bytes [0, 60)
//	entry i at 64 + 16*i, one per 64 KiB block of the data file:
//	  0  uint64   checksum of the block's bytes [i*64Ki, i*64Ki+len)
//	  8  uint32   len: bytes of the block that are part of the chunk (1..65536)
//	  12 uint32   check: low 32 bits of xxhash64(i, checksum, len)
//	an all-zero entry is unused.
//
// The header is only ever replaced whole (written aside, synced, renamed);
// entries are updated in place after the data they describe was written.
// Each entry carries its own block length, so the chunk length is derived
// from the entries and one entry write publishes both a block's checksum and
// the length it covers.
const (
	metaMagic     = "GFSCHUNK"
	formatVersion = 1
	algXXHash64   = 1
	headerSize    = 64
	entrySize     = 16
	flagClean     = 1
	// maxEntries bounds what the decoder accepts: 2^20 blocks = 64 GiB.
	maxEntries = 1 << 20
)

var (
	errMeta     = errors.New("store: bad chunk metadata")
	crc32cTable = crc32.MakeTable(crc32.Castagnoli)
)

// metaHeader is the decoded fixed part of a .meta file.
type metaHeader struct {
	Handle    Handle
	Version   Version
	Algorithm uint16
	BlockSize uint32
	Clean     bool
}

func encodeHeader(b []byte, h metaHeader) {
	clear(b[:headerSize])
	copy(b[0:8], metaMagic)
	binary.LittleEndian.PutUint16(b[8:], formatVersion)
	binary.LittleEndian.PutUint16(b[10:], h.Algorithm)
	binary.LittleEndian.PutUint32(b[12:], h.BlockSize)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.Handle))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.Version))
	var flags uint32
	if h.Clean {
		flags |= flagClean
	}
	binary.LittleEndian.PutUint32(b[32:], flags)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], crc32cTable))
}

func decodeHeader(b []byte) (metaHeader, error) {
	var h metaHeader
	if len(b) < headerSize {
		return h, fmt.Errorf("%w: header truncated (%d bytes)", errMeta, len(b))
	}
	if string(b[0:8]) != metaMagic {
		return h, fmt.Errorf("%w: bad magic %q", errMeta, b[0:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], crc32cTable); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", errMeta, got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatVersion {
		return h, fmt.Errorf("%w: unsupported format version %d", errMeta, v)
	}
	h.Algorithm = binary.LittleEndian.Uint16(b[10:])
	if h.Algorithm != algXXHash64 {
		return h, fmt.Errorf("%w: unsupported checksum algorithm %d", errMeta, h.Algorithm)
	}
	h.BlockSize = binary.LittleEndian.Uint32(b[12:])
	if h.BlockSize != BlockSize {
		return h, fmt.Errorf("%w: unsupported block size %d", errMeta, h.BlockSize)
	}
	h.Handle = Handle(binary.LittleEndian.Uint64(b[16:]))
	h.Version = Version(binary.LittleEndian.Uint64(b[24:]))
	flags := binary.LittleEndian.Uint32(b[32:])
	if flags&^flagClean != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x", errMeta, flags)
	}
	h.Clean = flags&flagClean != 0
	for _, c := range b[36:60] {
		if c != 0 {
			return h, fmt.Errorf("%w: reserved header bytes not zero", errMeta)
		}
	}
	return h, nil
}

func entryCheck(i int, sum uint64, n uint32) uint32 {
	var buf [20]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(i))
	binary.LittleEndian.PutUint64(buf[8:], sum)
	binary.LittleEndian.PutUint32(buf[16:], n)
	return uint32(xxhash.Sum64(buf[:]))
}

// encodeEntry writes the entry of block i (n bytes long, checksum sum) to b.
func encodeEntry(b []byte, i int, sum uint64, n uint32) {
	binary.LittleEndian.PutUint64(b[0:], sum)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint32(b[12:], entryCheck(i, sum, n))
}

// encodeBadEntry writes an entry that decodes as corrupt: used to keep a
// block known to be corrupt reported as such across a metadata rewrite.
func encodeBadEntry(b []byte, i int) {
	binary.LittleEndian.PutUint64(b[0:], 0)
	binary.LittleEndian.PutUint32(b[8:], BlockSize)
	binary.LittleEndian.PutUint32(b[12:], ^entryCheck(i, 0, BlockSize))
}

type entryState uint8

const (
	entryEmpty entryState = iota
	entryValid
	entryBad
)

func decodeEntry(b []byte, i int) (sum uint64, n uint32, st entryState) {
	sum = binary.LittleEndian.Uint64(b[0:])
	n = binary.LittleEndian.Uint32(b[8:])
	check := binary.LittleEndian.Uint32(b[12:])
	if sum == 0 && n == 0 && check == 0 {
		return 0, 0, entryEmpty
	}
	if n == 0 || n > BlockSize || check != entryCheck(i, sum, n) {
		return 0, 0, entryBad
	}
	return sum, n, entryValid
}

// chunkMeta is a decoded .meta file.
type chunkMeta struct {
	Header  metaHeader
	Length  int64
	Sums    []uint64 // one per block in [0, Length)
	Corrupt []int    // blocks whose entry is unreadable or inconsistent
}

// decodeMeta decodes a whole .meta file. The header must be valid; entries
// that are unreadable, or inconsistent with the derived length (a short or
// missing entry before the last one), are reported in Corrupt rather than
// failing the decode: the chunk stays readable apart from those blocks.
func decodeMeta(b []byte) (chunkMeta, error) {
	var m chunkMeta
	h, err := decodeHeader(b)
	if err != nil {
		return m, err
	}
	m.Header = h
	ents := b[headerSize:]
	count := len(ents) / entrySize
	if count > maxEntries {
		return m, fmt.Errorf("%w: %d entries exceed the limit %d", errMeta, count, maxEntries)
	}
	last := -1
	for i := count - 1; i >= 0; i-- {
		if _, _, st := decodeEntry(ents[i*entrySize:], i); st != entryEmpty {
			last = i
			break
		}
	}
	if last < 0 {
		return m, nil
	}
	m.Sums = make([]uint64, last+1)
	for i := 0; i <= last; i++ {
		sum, n, st := decodeEntry(ents[i*entrySize:], i)
		switch {
		case st == entryValid && (n == BlockSize || i == last):
			m.Sums[i] = sum
			if i == last {
				m.Length = int64(last)*BlockSize + int64(n)
			}
		default:
			// Unreadable, missing (a gap before the last entry) or short
			// before the end: the block's data cannot be trusted.
			m.Corrupt = append(m.Corrupt, i)
			if i == last {
				m.Length = int64(last+1) * BlockSize
			}
		}
	}
	return m, nil
}

// encodeMeta returns a whole .meta file for the given state, with entries
// room for at least capBlocks blocks (the rest zero, so later in-place entry
// writes need no allocation).
func encodeMeta(h metaHeader, length int64, sums []uint64, corrupt map[int]bool, capBlocks int) []byte {
	nb := blocksOf(length)
	if capBlocks < nb {
		capBlocks = nb
	}
	b := make([]byte, headerSize+entrySize*capBlocks)
	encodeHeader(b, h)
	for i := 0; i < nb; i++ {
		e := b[headerSize+i*entrySize:]
		if corrupt[i] {
			encodeBadEntry(e, i)
			continue
		}
		encodeEntry(e, i, sums[i], uint32(blockLen(i, length)))
	}
	return b
}

// blocksOf is the number of blocks that hold length bytes.
func blocksOf(length int64) int { return int((length + BlockSize - 1) / BlockSize) }

// blockLen is the number of bytes of block i inside a chunk of length bytes.
func blockLen(i int, length int64) int64 {
	start := int64(i) * BlockSize
	return min(start+BlockSize, length) - start
}

func crc32Castagnoli(b []byte) uint32 { return crc32.Checksum(b, crc32cTable) }
