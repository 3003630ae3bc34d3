package capability

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecode: any input is either rejected or decodes to a capability that
// re-encodes to exactly the input; never a panic.
func FuzzDecode(f *testing.F) {
	c := Capability{Handle: 1, Ops: OpRead | OpAppend, Expiry: time.Unix(1e9, 5), KeyID: 3, ClientID: 4}
	f.Add(c.Append(nil))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, Size))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Decode(in)
		if err != nil {
			return
		}
		if out := c.Append(nil); !bytes.Equal(out, in) {
			t.Fatalf("accepted token re-encodes to %x, input %x", out, in)
		}
		if c.Ops&^opAll != 0 {
			t.Fatalf("accepted unknown ops %s", c.Ops)
		}
	})
}

// FuzzVerify: with a fixed key, no input other than the one genuine token
// is accepted; never a panic.
func FuzzVerify(f *testing.F) {
	clk := newFakeClock()
	kr, err := NewKeyring(KeyringOptions{Now: clk.Now, Rand: constReader(0x5a)})
	if err != nil {
		f.Fatal(err)
	}
	keys, err := kr.Keys()
	if err != nil {
		f.Fatal(err)
	}
	v := NewVerifier(VerifierOptions{Now: clk.Now})
	v.SetKeys(keys)
	genuine, err := kr.Issue(nil, 77, OpRead|OpWrite, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine, uint64(77), uint8(OpRead))
	f.Add(genuine[:40], uint64(77), uint8(OpWrite))
	f.Add([]byte{}, uint64(0), uint8(0))
	f.Fuzz(func(t *testing.T, tok []byte, handle uint64, op uint8) {
		_, err := v.Verify(tok, handle, Op(op))
		if err == nil && (!bytes.Equal(tok, genuine) || handle != 77 || Op(op)&^(OpRead|OpWrite) != 0 || op == 0) {
			t.Fatalf("accepted token %x for chunk %d op %s", tok, handle, Op(op))
		}
	})
}
