package bench

import "unsafe"

// directAlign is the alignment of O_DIRECT buffers, offsets and lengths
// (covers 512-byte and 4 KiB logical block sizes).
const directAlign = 4096

// alignedBuffer returns a zeroed n-byte slice whose first byte is
// directAlign-aligned, as O_DIRECT requires.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if rem := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1)); rem != 0 {
		skip = directAlign - rem
	}
	return b[skip : skip+n : skip+n]
}

// alignUp rounds n up to a multiple of directAlign.
func alignUp(n int) int { return (n + directAlign - 1) &^ (directAlign - 1) }
