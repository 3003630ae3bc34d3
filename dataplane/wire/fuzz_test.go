package wire

import "testing"

// FuzzDecodeHeader: any input either decodes to a header that re-encodes to
// the same bytes, or is rejected; never a panic.
func FuzzDecodeHeader(f *testing.F) {
	var b [HeaderSize]byte
	for _, h := range []Header{
		{Op: OpRead, RequestID: 1, MetaLen: 32},
		{Op: OpPush, Flags: FlagInline, PayloadLen: 1 << 20, MetaLen: 40},
		{Op: OpApply, Flags: FlagResponse, Status: StatusStaleVersion, MetaLen: 4},
	} {
		h.Encode(b[:])
		f.Add(append([]byte(nil), b[:]...))
	}
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n0123456"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := DecodeHeader(in)
		if err != nil {
			return
		}
		var out [HeaderSize]byte
		h.Encode(out[:])
		if string(out[:]) != string(in[:HeaderSize]) {
			t.Fatalf("accepted header does not re-encode identically")
		}
		if h.CapLen > MaxCapability || h.MetaLen > MaxMeta || h.PayloadLen > MaxPayload || !h.Op.Valid() {
			t.Fatalf("accepted over-cap header %+v", h)
		}
	})
}

// FuzzDecodeMeta feeds the same bytes to every metadata decoder: each
// either rejects them or decodes something that re-encodes to them.
func FuzzDecodeMeta(f *testing.F) {
	f.Add((&ReadRequest{Handle: 1, Version: 2, Offset: 3, Length: 4}).Append(nil))
	f.Add((&ReadResponse{ChunkLength: 5, Sums: []uint64{1, 2}}).Append(nil))
	f.Add((&PushRequest{ID: PushID{1, 2}, Downstream: []string{"127.0.0.1:1"}}).Append(nil))
	f.Add((&MutationRequest{Handle: 1, Secondaries: []string{"a:1", "b:2"}}).Append(nil))
	f.Add((&ApplyRequest{Handle: 1, Primary: "p:1", Ops: []ApplyOp{{Kind: ApplyPad, Offset: 9}}}).Append(nil))
	f.Add((&ErrorResponse{Replica: "r:1", Message: "x"}).Append(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, m := range []codec{
			&ReadRequest{}, &ReadResponse{}, &LengthRequest{}, &LengthResponse{},
			&PushRequest{}, &MutationRequest{}, &MutationResponse{}, &ApplyRequest{}, &ErrorResponse{},
		} {
			if m.Decode(in) != nil {
				continue
			}
			if out := m.Append(nil); string(out) != string(in) {
				t.Fatalf("%T: decoded input re-encodes differently", m)
			}
		}
	})
}
