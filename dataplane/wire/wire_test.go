package wire

import (
	"errors"
	"reflect"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Op: OpPush, Flags: FlagSync | FlagInline, RequestID: 1<<63 + 5, Status: StatusBusy, CapLen: 7, MetaLen: MaxMeta, PayloadLen: MaxPayload}
	var b [HeaderSize]byte
	h.Encode(b[:])
	got, err := DecodeHeader(b[:])
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("got %+v want %+v", got, h)
	}
}

func TestHeaderRejects(t *testing.T) {
	good := Header{Op: OpRead, RequestID: 9, MetaLen: 32}
	cases := []struct {
		name   string
		mutate func(b []byte)
		h      *Header
		want   error
	}{
		{"short", nil, nil, ErrShortHeader},
		{"magic", func(b []byte) { b[0] = 'P' }, nil, ErrBadMagic},
		{"version", func(b []byte) { b[4] = 2 }, nil, ErrBadVersion},
		{"checksum", func(b []byte) { b[9] ^= 1 }, nil, ErrHeaderChecksum},
		{"checksum field", func(b []byte) { b[30] ^= 1 }, nil, ErrHeaderChecksum},
		{"opcode", nil, &Header{Op: 99}, ErrUnknownOp},
		{"opcode zero", nil, &Header{Op: 0}, ErrUnknownOp},
		{"flags", nil, &Header{Op: OpRead, Flags: 1 << 9}, ErrBadFlags},
		{"cap", nil, &Header{Op: OpRead, CapLen: MaxCapability + 1}, ErrTooLong},
		{"meta", nil, &Header{Op: OpRead, MetaLen: MaxMeta + 1}, ErrTooLong},
		{"payload", nil, &Header{Op: OpRead, PayloadLen: MaxPayload + 1}, ErrTooLong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := good
			if c.h != nil {
				h = *c.h
			}
			b := make([]byte, HeaderSize)
			h.Encode(b)
			if c.mutate != nil {
				c.mutate(b)
			}
			if c.name == "short" {
				b = b[:HeaderSize-1]
			}
			if _, err := DecodeHeader(b); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

type codec interface {
	Append([]byte) []byte
	Decode([]byte) error
}

func TestMetaRoundTrip(t *testing.T) {
	msgs := []struct{ in, out codec }{
		{&ReadRequest{Handle: 1, Version: 2, Offset: 3, Length: 4}, &ReadRequest{}},
		{&ReadResponse{ChunkLength: 10, RangeOffset: 65536, Sums: []uint64{1, 2, 3}}, &ReadResponse{}},
		{&LengthRequest{Handle: 5, Version: 6}, &LengthRequest{}},
		{&LengthResponse{Length: 7, Version: 8}, &LengthResponse{}},
		{&PushRequest{ID: PushID{1, 2}, DataSum: 3, Downstream: []string{"a:1", "b:2"}}, &PushRequest{}},
		{&MutationRequest{Handle: 1, Version: 2, Offset: 3, Length: 4, ID: PushID{5, 6}, DataSum: 7, Secondaries: []string{"x:9"}}, &MutationRequest{}},
		{&MutationResponse{Offset: 1 << 40}, &MutationResponse{}},
		{&ApplyRequest{Handle: 1, Version: 2, Serial: 3, Primary: "p:1", Ops: []ApplyOp{{ApplyInline, 0, 10, PushID{}}, {ApplyPushed, 10, 5, PushID{1, 2}}, {ApplyPad, 100, 0, PushID{}}}}, &ApplyRequest{}},
		{&ErrorResponse{Replica: "r:1", Message: "boom"}, &ErrorResponse{}},
	}
	for _, m := range msgs {
		b := m.in.Append(nil)
		if err := m.out.Decode(b); err != nil {
			t.Fatalf("%T: %v", m.in, err)
		}
		if !reflect.DeepEqual(m.in, m.out) {
			t.Fatalf("%T: got %+v want %+v", m.in, m.out, m.in)
		}
		// Every strict prefix and any trailing byte must be rejected.
		for i := 0; i < len(b); i++ {
			if err := m.out.Decode(b[:i]); err == nil {
				t.Fatalf("%T: prefix %d of %d accepted", m.in, i, len(b))
			}
		}
		if err := m.out.Decode(append(b, 0)); err == nil {
			t.Fatalf("%T: trailing byte accepted", m.in)
		}
	}
}

func TestMetaRejectsOverCap(t *testing.T) {
	long := make([]string, MaxChain+1)
	b := (&PushRequest{Downstream: long}).Append(nil)
	if err := new(PushRequest).Decode(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("over-long chain: %v", err)
	}
	bad := (&ApplyRequest{Ops: []ApplyOp{{Kind: 9}}}).Append(nil)
	if err := new(ApplyRequest).Decode(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad kind: %v", err)
	}
	var huge [20]byte
	huge[16], huge[17], huge[18], huge[19] = 0xff, 0xff, 0xff, 0x7f
	if err := new(ReadResponse).Decode(huge[:]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge sums count: %v", err)
	}
}

func TestAppendRequest(t *testing.T) {
	h := Header{Op: OpLength, RequestID: 3}
	b := AppendRequest(nil, &h, []byte("cap"), &LengthRequest{Handle: 1, Version: 2})
	got, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.CapLen != 3 || got.MetaLen != 16 || len(b) != HeaderSize+3+16 {
		t.Fatalf("header %+v len %d", got, len(b))
	}
	var r LengthRequest
	if err := r.Decode(b[HeaderSize+3:]); err != nil || r.Handle != 1 || r.Version != 2 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 4096)
	var hb [HeaderSize]byte
	h := Header{Op: OpPush, PayloadLen: 1 << 20}
	var pr PushRequest
	pr.Downstream = make([]string, 0, MaxChain)
	meta := (&PushRequest{ID: PushID{1, 2}}).Append(nil)
	rr := &ReadRequest{Handle: 1}
	allocs := testing.AllocsPerRun(100, func() {
		h.Encode(hb[:])
		if _, err := DecodeHeader(hb[:]); err != nil {
			t.Fatal(err)
		}
		buf = AppendRequest(buf[:0], &h, nil, rr)
		if err := pr.Decode(meta); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per header round trip", allocs)
	}
}
