package capability

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for keyrings and verifiers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// setup returns a keyring and a verifier that holds its keys, on one clock.
func setup(t testing.TB, opts KeyringOptions) (*Keyring, *Verifier, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	opts.Now = clk.Now
	kr, err := NewKeyring(opts)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(VerifierOptions{Now: clk.Now})
	syncKeys(t, kr, v)
	return kr, v, clk
}

// syncKeys does what a heartbeat does: the master's keys to the verifier.
func syncKeys(t testing.TB, kr *Keyring, v *Verifier) {
	t.Helper()
	keys, err := kr.Keys()
	if err != nil {
		t.Fatal(err)
	}
	v.SetKeys(keys)
}

func issue(t testing.TB, kr *Keyring, h uint64, ops Op) []byte {
	t.Helper()
	tok, err := kr.Issue(nil, h, ops, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != Size {
		t.Fatalf("token of %d bytes, want %d", len(tok), Size)
	}
	return tok
}

func TestIssueVerify(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{})
	for _, ops := range []Op{OpRead, OpWrite, OpAppend, OpCopy, OpRead | OpWrite | OpAppend} {
		tok := issue(t, kr, 7, ops)
		for _, op := range []Op{OpRead, OpWrite, OpAppend, OpCopy} {
			c, err := v.Verify(tok, 7, op)
			if ops&op == 0 {
				if !errors.Is(err, ErrWrongOp) {
					t.Fatalf("ops %s, op %s: err %v, want ErrWrongOp", ops, op, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("ops %s, op %s: %v", ops, op, err)
			}
			if c.Handle != 7 || c.Ops != ops || c.ClientID != 42 || !c.Expiry.Equal(clk.Now().Add(DefaultTTL)) {
				t.Fatalf("decoded %v", c)
			}
		}
	}
	if _, err := kr.Issue(nil, 7, 0, 0); !errors.Is(err, ErrNoOps) {
		t.Fatalf("issue without ops: %v", err)
	}
	if _, err := kr.Issue(nil, 7, 0x80, 0); !errors.Is(err, ErrNoOps) {
		t.Fatalf("issue with unknown ops: %v", err)
	}
	// Appending to a caller's buffer keeps its prefix.
	tok, err := kr.Issue([]byte("prefix"), 9, OpRead, 0)
	if err != nil || string(tok[:6]) != "prefix" {
		t.Fatalf("issue into buffer: %q %v", tok, err)
	}
	if _, err := v.Verify(tok[6:], 9, OpRead); err != nil {
		t.Fatal(err)
	}
}

func TestRefusals(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{TTL: time.Minute})
	good := issue(t, kr, 100, OpRead)
	other, err := NewKeyring(KeyringOptions{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := other.Issue(nil, 100, OpRead, 0)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 1
		return b
	}
	// A token made with a key of the same id but another secret: forged.
	keys, _ := kr.Keys()
	cur := Capability{Handle: 100, Ops: OpRead, Expiry: clk.Now().Add(time.Minute), KeyID: keys[0].ID}
	fake := newMacer(mustKey(t, keys[0].ID, bytes.Repeat([]byte{1}, SecretSize), keys[0].Expires))
	body := cur.appendBody(nil)
	fake.sign(body, &cur.MAC)
	forged := cur.Append(nil)

	cases := []struct {
		name   string
		tok    []byte
		handle uint64
		op     Op
		want   error
	}{
		{"missing", nil, 100, OpRead, ErrMissing},
		{"short", good[:Size-1], 100, OpRead, ErrMalformed},
		{"long", append(append([]byte(nil), good...), 0), 100, OpRead, ErrMalformed},
		{"version", flip(0), 100, OpRead, ErrMalformed},
		{"reserved", flip(2), 100, OpRead, ErrMalformed},
		{"unknown ops", func() []byte { b := flip(1); b[1] |= 0x80; return b }(), 100, OpRead, ErrMalformed},
		{"unknown key", unknown, 100, OpRead, ErrUnknownKey},
		{"mac bit", flip(Size - 1), 100, OpRead, ErrForged},
		{"handle altered", flip(8), 101, OpRead, ErrForged},
		{"ops altered", func() []byte { b := append([]byte(nil), good...); b[1] = byte(OpRead | OpWrite); return b }(), 100, OpWrite, ErrForged},
		{"expiry altered", flip(31), 100, OpRead, ErrForged},
		{"other secret", forged, 100, OpRead, ErrForged},
		{"wrong chunk", good, 101, OpRead, ErrWrongChunk},
		{"wrong op", good, 100, OpWrite, ErrWrongOp},
		{"no op", good, 100, 0, ErrWrongOp},
	}
	for _, tc := range cases {
		before := v.Refusals().Total()
		_, err := v.Verify(tc.tok, tc.handle, tc.op)
		if !errors.Is(err, tc.want) || !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err %v, want %v (and ErrRefused)", tc.name, err, tc.want)
		}
		if got := v.Refusals().Total(); got != before+1 {
			t.Errorf("%s: %d refusals counted, want 1", tc.name, got-before)
		}
	}
	clk.Advance(time.Minute)
	if _, err := v.Verify(good, 100, OpRead); !errors.Is(err, ErrExpired) {
		t.Fatalf("after TTL: %v, want ErrExpired", err)
	}
	want := Refusals{Missing: 1, Malformed: 5, UnknownKey: 1, Forged: 5, Expired: 1, WrongChunk: 1, WrongOp: 2}
	if got := v.Refusals(); got != want {
		t.Fatalf("refusal counts %+v, want %+v", got, want)
	}
}

func mustKey(t testing.TB, id uint32, secret []byte, exp time.Time) Key {
	t.Helper()
	k, err := NewKey(id, secret, exp)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestClockSkew(t *testing.T) {
	kr, _, clk := setup(t, KeyringOptions{TTL: time.Minute})
	v := NewVerifier(VerifierOptions{Now: clk.Now, ClockSkew: 5 * time.Second})
	syncKeys(t, kr, v)
	tok := issue(t, kr, 1, OpRead)
	clk.Advance(time.Minute + 4*time.Second)
	if _, err := v.Verify(tok, 1, OpRead); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := v.Verify(tok, 1, OpRead); !errors.Is(err, ErrExpired) {
		t.Fatalf("past skew: %v", err)
	}
}

func TestNewKeyBadSecret(t *testing.T) {
	if _, err := NewKey(1, make([]byte, 16), time.Time{}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := NewKeyring(KeyringOptions{TTL: -1}); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("negative TTL: %v", err)
	}
	if _, err := NewKeyring(KeyringOptions{Rand: bytes.NewReader(nil)}); err == nil {
		t.Fatal("keyring without randomness created")
	}
}

// TestRotation runs a client that refreshes its token every half TTL
// through many rotations, with the chunkserver learning keys only from
// periodic heartbeats: no token it holds is ever refused.
func TestRotation(t *testing.T) {
	const (
		rotate    = time.Minute
		ttl       = 2 * time.Minute
		heartbeat = 10 * time.Second
	)
	kr, v, clk := setup(t, KeyringOptions{RotateEvery: rotate, TTL: ttl})
	tok := issue(t, kr, 5, OpRead|OpAppend)
	issued := clk.Now()
	seen := map[uint32]bool{}
	for step := 0; step < 200; step++ {
		clk.Advance(heartbeat / 2)
		if step%2 == 0 {
			syncKeys(t, kr, v)
		}
		if clk.Now().Sub(issued) >= ttl/2 {
			tok, issued = issue(t, kr, 5, OpRead|OpAppend), clk.Now()
		}
		c, err := v.Verify(tok, 5, OpAppend)
		if err != nil {
			t.Fatalf("step %d: running client refused: %v", step, err)
		}
		seen[c.KeyID] = true
		if n := len(v.KeyIDs()); n > 5 {
			t.Fatalf("verifier holds %d keys: retired keys are not dropped", n)
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d keys signed in 1000 s with rotation every %s", len(seen), rotate)
	}
	// The first key, long retired, is gone: a token it signed is refused.
	if v.Refusals().Total() != 0 {
		t.Fatalf("refusals %+v", v.Refusals())
	}
}

// TestNextKeyAnnounced: the key that signs after a rotation is listed by
// Keys a full period before, so a chunkserver holding the keys of the last
// heartbeat accepts the first token it signs.
func TestNextKeyAnnounced(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{RotateEvery: time.Minute})
	clk.Advance(time.Minute) // rotation; the verifier has not heard of it
	tok := issue(t, kr, 3, OpRead)
	if _, err := v.Verify(tok, 3, OpRead); err != nil {
		t.Fatalf("token of the announced key: %v", err)
	}
}

// TestRetiredKeyDropped: a key is listed until its last token expired, then
// dropped; a token it signed is then refused as expired or unknown.
func TestRetiredKeyDropped(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{RotateEvery: time.Minute, TTL: time.Minute})
	tok := issue(t, kr, 3, OpRead)
	first, _ := Decode(tok)
	clk.Advance(90 * time.Second)
	syncKeys(t, kr, v)
	if _, err := v.Verify(tok, 3, OpRead); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired token: %v", err)
	}
	clk.Advance(time.Minute)
	syncKeys(t, kr, v)
	for _, id := range v.KeyIDs() {
		if id == first.KeyID {
			t.Fatalf("key %d still listed after all its tokens expired", id)
		}
	}
	if _, err := v.Verify(tok, 3, OpRead); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a dropped key: %v", err)
	}
}

// TestIdleKeyring: a keyring not called for many periods starts afresh and
// signs with a key it lists.
func TestIdleKeyring(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{RotateEvery: time.Minute, TTL: time.Minute})
	clk.Advance(time.Hour)
	syncKeys(t, kr, v)
	tok := issue(t, kr, 3, OpRead)
	if _, err := v.Verify(tok, 3, OpRead); err != nil {
		t.Fatal(err)
	}
	if n := len(v.KeyIDs()); n > 3 {
		t.Fatalf("%d keys listed after an idle hour", n)
	}
}

// TestConcurrentVerify runs verifications while keys are replaced.
func TestConcurrentVerify(t *testing.T) {
	kr, v, clk := setup(t, KeyringOptions{RotateEvery: time.Minute})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := kr.Issue(nil, 1, OpRead, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := v.Verify(tok, 1, OpRead); err != nil && !errors.Is(err, ErrRefused) {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		clk.Advance(time.Second)
		syncKeys(t, kr, v)
	}
	close(stop)
	wg.Wait()
}

func TestVerifyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	kr, v, _ := setup(t, KeyringOptions{})
	tok := issue(t, kr, 1, OpRead)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := v.Verify(tok, 1, OpRead); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Verify allocates %v times per call", n)
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{0: "none", OpRead: "read", OpRead | OpCopy: "read|copy", OpAppend | 0x40: "append|0x40"} {
		if got := op.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(op), got, want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	kr, v, _ := setup(b, KeyringOptions{})
	tok := issue(b, kr, 1, OpRead)
	b.ReportAllocs()
	b.SetBytes(Size)
	for b.Loop() {
		if _, err := v.Verify(tok, 1, OpRead); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssue(b *testing.B) {
	kr, _, _ := setup(b, KeyringOptions{})
	buf := make([]byte, 0, Size)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = kr.Issue(buf[:0], 1, OpRead, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyAnyOpAndChunk(t *testing.T) {
	kr, v, _ := setup(t, KeyringOptions{})
	w := issue(t, kr, 5, OpWrite)
	rc := issue(t, kr, 5, OpCopy)
	if _, err := v.VerifyAnyOp(w, 5, OpWrite|OpAppend); err != nil {
		t.Fatalf("write token for a write-or-append round: %v", err)
	}
	if _, err := v.Verify(w, 5, OpWrite|OpAppend); !errors.Is(err, ErrWrongOp) {
		t.Fatalf("write token where both are required: %v", err)
	}
	if _, err := v.VerifyAnyOp(rc, 5, OpRead|OpCopy); err != nil {
		t.Fatalf("copy token for a read-or-copy: %v", err)
	}
	if _, err := v.VerifyAnyOp(rc, 5, OpWrite|OpAppend); !errors.Is(err, ErrWrongOp) {
		t.Fatalf("copy token for a mutation: %v", err)
	}
	if _, err := v.VerifyAnyOp(w, 6, OpWrite); !errors.Is(err, ErrWrongChunk) {
		t.Fatalf("other chunk: %v", err)
	}
	if _, err := v.VerifyAnyChunk(w, OpWrite|OpAppend); err != nil {
		t.Fatalf("push with a write token: %v", err)
	}
	if _, err := v.VerifyAnyChunk(rc, OpWrite|OpAppend); !errors.Is(err, ErrWrongOp) {
		t.Fatalf("push with a copy token: %v", err)
	}
	if _, err := v.VerifyAnyChunk(nil, OpWrite); !errors.Is(err, ErrMissing) {
		t.Fatalf("push without a token: %v", err)
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if FromContext(ctx) != nil {
		t.Fatal("token in an empty context")
	}
	if got := FromContext(NewContext(ctx, []byte("tok"))); string(got) != "tok" {
		t.Fatalf("FromContext = %q", got)
	}
}
