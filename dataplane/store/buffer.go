package store

import (
	"sync"
	"unsafe"
)

// bufAlign is the memory alignment of every pooled buffer. It satisfies the
// O_DIRECT memory alignment of every file system we know (statx reports 4 to
// 4096); Open falls back to buffered I/O if a file system asks for more.
const bufAlign = 4096

// Buffer is a pooled byte slice whose first byte is aligned for O_DIRECT.
// Get one with GetBuffer, return it with PutBuffer, and do not use it (or
// slices of B) afterwards.
type Buffer struct {
	// B has the length asked for in GetBuffer; its capacity may be larger.
	B []byte

	mem   []byte // aligned backing memory, len == class size
	class int    // index into bufPools, -1 when not pooled
}

const (
	minClassShift = 12 // 4 KiB
	maxClassShift = 23 // 8 MiB: larger buffers are not pooled
)

// bufPools holds one pool per power-of-two size class. sync.Pool drops idle
// buffers at garbage collection, so the memory held is bounded by what is in
// use plus what the last GC cycles returned.
var bufPools [maxClassShift - minClassShift + 1]sync.Pool

// GetBuffer returns a buffer with len(B) == n whose memory is aligned to
// 4096 bytes. Its contents are undefined (not zeroed).
func GetBuffer(n int) *Buffer {
	if n < 0 {
		n = 0
	}
	class := classOf(n)
	if class < 0 {
		mem := alignedAlloc(n)
		return &Buffer{B: mem[:n], mem: mem, class: -1}
	}
	if v := bufPools[class].Get(); v != nil {
		b := v.(*Buffer)
		b.B = b.mem[:n]
		return b
	}
	mem := alignedAlloc(1 << (class + minClassShift))
	return &Buffer{B: mem[:n], mem: mem, class: class}
}

// PutBuffer returns b to the pool. b may be nil.
func PutBuffer(b *Buffer) {
	if b == nil || b.class < 0 {
		return
	}
	b.B = nil
	bufPools[b.class].Put(b)
}

func classOf(n int) int {
	for c := 0; c <= maxClassShift-minClassShift; c++ {
		if n <= 1<<(c+minClassShift) {
			return c
		}
	}
	return -1
}

// alignedAlloc returns a zeroed slice of length n starting at a bufAlign
// boundary.
func alignedAlloc(n int) []byte {
	raw := make([]byte, n+bufAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (bufAlign - 1)); r != 0 {
		skip = bufAlign - r
	}
	return raw[skip : skip+n : skip+n]
}

// isAligned reports whether p starts at a multiple of align (a power of two).
func isAligned(p []byte, align int) bool {
	if len(p) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))&uintptr(align-1) == 0
}
