package chunkserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// rawFrame builds a request frame with raw metadata and payload.
func rawFrame(op wire.Op, flags uint16, meta, payload []byte) []byte {
	h := wire.Header{Op: op, Flags: flags, RequestID: 77, PayloadLen: uint32(len(payload))}
	return append(wire.AppendFrame(nil, &h, nil, meta), payload...)
}

// exchange sends b and returns the answer's status, or closed=true when
// the server closed the connection instead.
func exchange(t *testing.T, nc net.Conn, b []byte) (st wire.Status, closed bool) {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := nc.Write(b); err != nil {
		return 0, true
	}
	var hb [wire.HeaderSize]byte
	if _, err := io.ReadFull(nc, hb[:]); err != nil {
		return 0, true
	}
	h, err := wire.DecodeHeader(hb[:])
	if err != nil && !errors.Is(err, wire.ErrUnknownOp) { // the answer to an unknown opcode echoes it
		t.Fatalf("server sent a bad header: %v", err)
	}
	if _, err := io.CopyN(io.Discard, nc, int64(h.MetaLen)+int64(h.PayloadLen)); err != nil {
		t.Fatal(err)
	}
	return h.Status, false
}

// TestBadInput: every kind of bad frame gets an error status or a closed
// connection; the server keeps serving others and the store is unchanged.
func TestBadInput(t *testing.T) {
	noLeaks(t)
	s := startServer(t, nil)
	rs := newChunk(t, []string{s.Addr()}, 0x60, 0)
	dc := newClient(t)
	ctx := context.Background()
	if err := dc.Write(ctx, []string{s.Addr()}, s.Addr(), rs.handle, 1, 0, []byte("precious"), false); err != nil {
		t.Fatal(err)
	}
	before := s.store.List()

	good := rawFrame(wire.OpLength, 0, (&wire.LengthRequest{Handle: rs.handle}).Append(nil), nil)
	corrupt := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	reheader := func(h wire.Header, rest []byte) []byte {
		b := make([]byte, wire.HeaderSize)
		h.Encode(b)
		return append(b, rest...)
	}
	unknownOp := make([]byte, wire.HeaderSize)
	(&wire.Header{Op: wire.OpLength, RequestID: 1, MetaLen: 3}).Encode(unknownOp)
	unknownOp[5] = 42 // unknown opcode with a valid checksum
	binary.LittleEndian.PutUint32(unknownOp[28:], 0)
	unknownOp = reheaderRaw(unknownOp)
	unknownOp = append(unknownOp, 1, 2, 3)

	cases := []struct {
		name      string
		frame     []byte
		wantClose bool
		want      wire.Status
	}{
		{"bad magic", corrupt(func(b []byte) { b[0] ^= 0xff }), true, 0},
		{"http/1", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 16))), true, 0},
		{"bad header checksum", corrupt(func(b []byte) { b[12] ^= 1 }), true, 0},
		{"bad version", corrupt(func(b []byte) { b[4] = 9 }), true, 0},
		{"meta over cap", reheader(wire.Header{Op: wire.OpRead, MetaLen: wire.MaxMeta + 1}, nil), true, 0},
		{"payload over cap", reheader(wire.Header{Op: wire.OpPush, PayloadLen: wire.MaxPayload + 1}, nil), true, 0},
		{"response as request", reheader(wire.Header{Op: wire.OpRead, Flags: wire.FlagResponse}, nil), true, 0},
		{"truncated frame", good[:len(good)-3], true, 0},
		{"unknown opcode", unknownOp, false, wire.StatusUnknownOp},
		{"malformed meta", rawFrame(wire.OpRead, 0, []byte{1, 2, 3}, nil), false, wire.StatusBadRequest},
		{"read unknown chunk", rawFrame(wire.OpRead, 0, (&wire.ReadRequest{Handle: 999, Length: 10}).Append(nil), nil), false, wire.StatusNoSuchChunk},
		{"read negative offset", rawFrame(wire.OpRead, 0, (&wire.ReadRequest{Handle: rs.handle, Offset: -1, Length: 10}).Append(nil), nil), false, wire.StatusBadRequest},
		{"read newer version", rawFrame(wire.OpRead, 0, (&wire.ReadRequest{Handle: rs.handle, Version: 5, Length: 10}).Append(nil), nil), false, wire.StatusStaleVersion},
		{"read too large", rawFrame(wire.OpRead, 0, (&wire.ReadRequest{Handle: rs.handle, Length: wire.MaxPayload}).Append(nil), nil), false, wire.StatusTooLarge},
		{"write beyond chunk", rawFrame(wire.OpWrite, wire.FlagInline, (&wire.MutationRequest{Handle: rs.handle, Version: 1, Offset: testChunkSize - 2, Length: 4}).Append(nil), []byte("abcd")), false, wire.StatusOutOfRange},
		{"write bad inline sum", rawFrame(wire.OpWrite, wire.FlagInline, (&wire.MutationRequest{Handle: rs.handle, Version: 1, Length: 4, DataSum: 1}).Append(nil), []byte("abcd")), false, wire.StatusChecksum},
		{"write stale version", rawFrame(wire.OpWrite, wire.FlagInline, (&wire.MutationRequest{Handle: rs.handle, Version: 0, Length: 4}).Append(nil), []byte("abcd")), false, wire.StatusNotPrimary},
		{"inline length mismatch", rawFrame(wire.OpWrite, wire.FlagInline, (&wire.MutationRequest{Handle: rs.handle, Version: 1, Length: 9}).Append(nil), []byte("abcd")), false, wire.StatusBadRequest},
		{"record too large", rawFrame(wire.OpAppend, 0, (&wire.MutationRequest{Handle: rs.handle, Version: 1, Length: testChunkSize/4 + 1}).Append(nil), nil), false, wire.StatusTooLarge},
		{"apply stale version", rawFrame(wire.OpApply, 0, (&wire.ApplyRequest{Handle: rs.handle, Version: 7, Serial: 1, Primary: "x:1", Ops: []wire.ApplyOp{{Kind: wire.ApplyInline, Length: 2}}}).Append(nil), []byte("zz")), false, wire.StatusStaleVersion},
		{"apply on the primary", rawFrame(wire.OpApply, 0, (&wire.ApplyRequest{Handle: rs.handle, Version: 1, Serial: 1, Primary: "x:1", Ops: []wire.ApplyOp{{Kind: wire.ApplyInline, Length: 2}}}).Append(nil), []byte("zz")), false, wire.StatusNotPrimary},
		{"apply payload mismatch", rawFrame(wire.OpApply, 0, (&wire.ApplyRequest{Handle: rs.handle, Version: 1, Serial: 1, Primary: "x:1", Ops: []wire.ApplyOp{{Kind: wire.ApplyInline, Length: 5}}}).Append(nil), []byte("zz")), false, wire.StatusBadRequest},
		{"push bad checksum", rawFrame(wire.OpPush, 0, (&wire.PushRequest{ID: wire.PushID{Client: 3, Seq: 3}, DataSum: 12}).Append(nil), []byte("data")), false, wire.StatusChecksum},
		{"empty push", rawFrame(wire.OpPush, 0, (&wire.PushRequest{ID: wire.PushID{Client: 3, Seq: 4}}).Append(nil), nil), false, wire.StatusBadRequest},
		{"push to dead downstream", rawFrame(wire.OpPush, 0, (&wire.PushRequest{ID: wire.PushID{Client: 3, Seq: 5}, DataSum: xxhash.Sum64([]byte("data")), Downstream: []string{"127.0.0.1:1"}}).Append(nil), []byte("data")), false, wire.StatusUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if c.name == "truncated frame" {
				_, _ = nc.Write(c.frame)
				nc.(*net.TCPConn).CloseWrite()
				if _, err := io.ReadAll(nc); err != nil {
					t.Fatal(err)
				}
				return
			}
			st, closed := exchange(t, nc, c.frame)
			if closed != c.wantClose || (!closed && st != c.want) {
				t.Fatalf("got status %v closed=%v, want %v closed=%v", st, closed, c.want, c.wantClose)
			}
			if !closed {
				// The connection is still at a frame boundary.
				if st, closed := exchange(t, nc, good); closed || st != wire.StatusOK {
					t.Fatalf("follow-up request: %v closed=%v", st, closed)
				}
			}
		})
	}
	// Others are still served, and nothing on disk changed.
	got := make([]byte, 8)
	if _, err := dc.Read(ctx, s.Addr(), rs.handle, 1, 0, got); err != nil || string(got) != "precious" {
		t.Fatalf("read after bad input: %q %v", got, err)
	}
	if after := s.store.List(); !reflect.DeepEqual(before, after) {
		t.Fatalf("store changed: %+v -> %+v", before, after)
	}
	if _, err := dc.Read(ctx, s.Addr(), 12345, 0, 0, got); !errors.Is(err, dataclient.ErrNoSuchChunk) {
		t.Fatalf("client read of unknown chunk: %v", err)
	}
}

// reheaderRaw recomputes the checksum of a hand-edited header.
func reheaderRaw(b []byte) []byte {
	var h wire.Header
	h.Op = wire.Op(b[5])
	h.Flags = binary.LittleEndian.Uint16(b[6:])
	h.RequestID = binary.LittleEndian.Uint64(b[8:])
	h.CapLen = binary.LittleEndian.Uint16(b[16:])
	h.Status = wire.Status(binary.LittleEndian.Uint16(b[18:]))
	h.MetaLen = binary.LittleEndian.Uint32(b[20:])
	h.PayloadLen = binary.LittleEndian.Uint32(b[24:])
	out := make([]byte, wire.HeaderSize)
	h.Encode(out)
	return out
}
