package capability

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// constReader yields one byte forever: keys with a recognisable secret.
type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// TestSecretsNotPrinted formats keys, tokens and refusals every way code
// might log them and checks neither the key secret nor a token's MAC shows.
func TestSecretsNotPrinted(t *testing.T) {
	clk := newFakeClock()
	kr, err := NewKeyring(KeyringOptions{Now: clk.Now, Rand: constReader(0xC7)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kr.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keys[0].Secret(), bytes.Repeat([]byte{0xC7}, SecretSize)) {
		t.Fatal("test setup: secret not the reader's bytes")
	}
	tok, err := kr.Issue(nil, 0x1234, OpRead, 9)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(VerifierOptions{Now: clk.Now})
	v.SetKeys(keys)
	_, wrongChunk := v.Verify(tok, 1, OpRead)
	_, forged := v.Verify(append(tok[:Size-1:Size-1], tok[Size-1]^1), 0x1234, OpRead)
	if wrongChunk == nil || forged == nil {
		t.Fatal("refusals expected")
	}

	secretHex := hex.EncodeToString(keys[0].Secret()[:8])
	macHex := hex.EncodeToString(c.MAC[:8])
	forbidden := []string{
		secretHex, strings.ToUpper(secretHex), "199 199", "0xc7, 0xc7", string(keys[0].Secret()[:4]),
		macHex, strings.ToUpper(macHex), string(c.MAC[:6]), fmt.Sprint(c.MAC[:3])[1:8],
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, keys[0]), fmt.Sprintf(verb, keys), fmt.Sprintf(verb, &keys[0]),
			fmt.Sprintf(verb, struct{ K Key }{keys[0]}),
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, []Capability{c}),
		)
	}
	type location struct {
		Handle     uint64
		Capability Token
	}
	loc := location{Handle: 0x1234, Capability: Token(tok)}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		outputs = append(outputs, fmt.Sprintf(verb, loc), fmt.Sprintf(verb, loc.Capability))
	}
	var logged bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&logged, nil), slog.NewJSONHandler(&logged, nil)} {
		slog.New(h).Info("keys", "token", Token(tok), "location", loc, "key", keys[0], "keys", keys, "capability", c, "err", forged, "err2", wrongChunk)
	}
	outputs = append(outputs, logged.String(), wrongChunk.Error(), forged.Error())
	for _, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Fatalf("secret material %q printed in %q", f, out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(keys[0]), fmt.Sprint(keys[0].ID)) || !strings.Contains(c.String(), "1234") {
		t.Fatalf("descriptions lack the public fields: %v %v", keys[0], c)
	}
	if !errors.Is(forged, ErrForged) {
		t.Fatal(forged)
	}
	_ = time.Second
}
