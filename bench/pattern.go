package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// ErrVerify reports data read back that differs from what was written, or an
// acknowledged record append that cannot be found. It fails the run.
var ErrVerify = errors.New("bench: verification failed")

// VerifyError says where verification failed.
type VerifyError struct {
	Path   string
	Offset int64 // absolute offset in the file of the first bad byte (-1 if not a byte range)
	Detail string
}

func (e *VerifyError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("bench: verify %s: %s", e.Path, e.Detail)
	}
	return fmt.Sprintf("bench: verify %s at offset %d: %s", e.Path, e.Offset, e.Detail)
}

// Unwrap makes errors.Is(err, ErrVerify) true.
func (e *VerifyError) Unwrap() error { return ErrVerify }

// patternStampBytes at the start of every stampBlock hold the stream id and
// the block's offset, so that a read served from the wrong file or offset
// fails even where the random filler repeats.
const (
	stampBlock        = 4096
	patternStampBytes = 16
	// patternBytes is prime-ish and not a multiple of stampBlock, so the filler
	// at a given offset differs between neighbouring blocks and streams.
	patternBytes = 1<<20 + 4093
)

// Pattern generates file contents that are a pure function of (stream id,
// offset): any range can be produced or checked without the rest of the
// file. One Pattern (its random filler) is shared by a whole run.
type Pattern struct {
	filler []byte // patternBytes of random data, doubled so any window is contiguous
}

// NewPattern returns a Pattern whose filler is derived from seed.
func NewPattern(seed uint64) *Pattern {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := make([]byte, 2*patternBytes)
	for i := 0; i+8 <= patternBytes; i += 8 {
		binary.LittleEndian.PutUint64(f[i:], r.Uint64())
	}
	copy(f[patternBytes:], f[:patternBytes])
	return &Pattern{filler: f}
}

// Fill writes the bytes of stream id at [off, off+len(p)) into p.
func (g *Pattern) Fill(id uint64, p []byte, off int64) {
	var stamp [patternStampBytes]byte
	for len(p) > 0 {
		inBlock := int(off % stampBlock)
		n := min(len(p), stampBlock-inBlock)
		seg, segOff := p[:n], off
		if inBlock < patternStampBytes {
			binary.LittleEndian.PutUint64(stamp[0:], id)
			binary.LittleEndian.PutUint64(stamp[8:], uint64(off-int64(inBlock)))
			k := copy(seg, stamp[inBlock:])
			seg, segOff = seg[k:], segOff+int64(k)
		}
		if len(seg) > 0 {
			// len(seg) < stampBlock < patternBytes and filler is doubled, so the
			// window never runs off its end.
			start := int((uint64(segOff) + id*7919) % patternBytes)
			copy(seg, g.filler[start:start+len(seg)])
		}
		p, off = p[n:], off+int64(n)
	}
}

// Verify compares p with the bytes of stream id at off, in place (the
// filler is compared directly, nothing is generated).
func (g *Pattern) Verify(path string, id uint64, p []byte, off int64) error {
	var stamp [patternStampBytes]byte
	base := off
	for len(p) > 0 {
		inBlock := int(off % stampBlock)
		n := min(len(p), stampBlock-inBlock)
		seg, segOff := p[:n], off
		if inBlock < patternStampBytes {
			binary.LittleEndian.PutUint64(stamp[0:], id)
			binary.LittleEndian.PutUint64(stamp[8:], uint64(off-int64(inBlock)))
			want := stamp[inBlock:min(patternStampBytes, inBlock+n)]
			if !bytes.Equal(seg[:len(want)], want) {
				return mismatch(path, base, segOff, seg[:len(want)], want)
			}
			seg, segOff = seg[len(want):], segOff+int64(len(want))
		}
		if len(seg) > 0 {
			start := int((uint64(segOff) + id*7919) % patternBytes)
			want := g.filler[start : start+len(seg)]
			if !bytes.Equal(seg, want) {
				return mismatch(path, base, segOff, seg, want)
			}
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func mismatch(path string, base, off int64, got, want []byte) error {
	i := 0
	for i < len(got) && got[i] == want[i] {
		i++
	}
	return &VerifyError{Path: path, Offset: off + int64(i),
		Detail: fmt.Sprintf("read from offset %d differs at byte %d (got %#02x, want %#02x)", base, off+int64(i)-base, got[i], want[i])}
}
