package wire

// AppendFrame appends a frame's header, capability and metadata to b. The
// header's CapLen and MetaLen are set from capability and meta; PayloadLen
// is taken from h (the payload itself is written by the caller, possibly
// with sendfile). The caller keeps capability and meta within their caps.
func AppendFrame(b []byte, h *Header, capability, meta []byte) []byte {
	h.CapLen = uint16(len(capability))
	h.MetaLen = uint32(len(meta))
	n := len(b)
	b = append(b, make([]byte, HeaderSize)...)
	h.Encode(b[n:])
	b = append(b, capability...)
	return append(b, meta...)
}

// AppendRequest appends a request frame with meta encoded by enc in place
// (no intermediate buffer): header, capability, then the metadata.
func AppendRequest(b []byte, h *Header, capability []byte, m interface{ Append([]byte) []byte }) []byte {
	n := len(b)
	var zero [HeaderSize]byte
	b = append(b, zero[:]...)
	b = append(b, capability...)
	metaStart := len(b)
	b = m.Append(b)
	h.CapLen = uint16(len(capability))
	h.MetaLen = uint32(len(b) - metaStart)
	h.Encode(b[n:])
	return b
}
