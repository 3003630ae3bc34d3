package capability

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
	"time"
)

// SecretSize is the length of a key's secret (HMAC-SHA256 key).
const SecretSize = 32

// ErrBadKey reports a key that cannot be used (wrong secret length).
var ErrBadKey = errors.New("capability: bad key")

// Key is one signing key: an id carried in every token it signs, the
// secret, and the instant after which no token signed with it is valid.
//
// Key's String, GoString, Format and LogValue never show the secret; only
// Secret does, for sending the key to chunkservers.
type Key struct {
	ID      uint32
	Expires time.Time
	secret  [SecretSize]byte
}

// NewKey returns the key with the given id, secret (SecretSize bytes,
// copied) and expiry.
func NewKey(id uint32, secret []byte, expires time.Time) (Key, error) {
	k := Key{ID: id, Expires: expires}
	if len(secret) != SecretSize {
		return Key{}, fmt.Errorf("key %d: secret of %d bytes, want %d: %w", id, len(secret), SecretSize, ErrBadKey)
	}
	copy(k.secret[:], secret)
	return k, nil
}

// Secret returns a copy of the key's secret. Only the code that sends keys
// to chunkservers over the authenticated control channel should call it.
func (k Key) Secret() []byte { return append([]byte(nil), k.secret[:]...) }

// String describes the key without its secret.
func (k Key) String() string {
	return fmt.Sprintf("key{id %d expires %s}", k.ID, k.Expires.UTC().Format(time.RFC3339))
}

// GoString is String.
func (k Key) GoString() string { return k.String() }

// Format prints String for every verb (%d or %x of the struct would
// otherwise print the secret's bytes).
func (k Key) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue logs the id and expiry only.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("id", k.ID), slog.Time("expires", k.Expires))
}

// Format prints String for every verb (the MAC is a bearer secret).
func (c Capability) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue logs the capability without its MAC.
func (c Capability) LogValue() slog.Value { return slog.StringValue(c.String()) }

// macer computes HMAC-SHA256 with one key without allocating per token:
// hashes (with their scratch space) are pooled per key.
type macer struct {
	key  Key
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMacer(k Key) *macer {
	m := &macer{key: k}
	m.pool.New = func() any { return &macState{h: hmac.New(sha256.New, m.key.secret[:])} }
	return m
}

// equal reports whether mac is the HMAC of body, in constant time.
func (m *macer) equal(body, mac []byte) bool {
	s := m.pool.Get().(*macState)
	s.h.Reset()
	s.h.Write(body)
	ok := hmac.Equal(s.h.Sum(s.sum[:0]), mac)
	m.pool.Put(s)
	return ok
}

// sign writes the HMAC of body into mac.
func (m *macer) sign(body []byte, mac *[MACSize]byte) {
	s := m.pool.Get().(*macState)
	s.h.Reset()
	s.h.Write(body)
	copy(mac[:], s.h.Sum(s.sum[:0]))
	m.pool.Put(s)
}

// Token is an encoded capability as clients carry it. It is a bearer
// secret: it prints (every verb, %+v of a struct holding it included) and
// logs as its length only.
type Token []byte

// String describes the token without its bytes.
func (t Token) String() string { return fmt.Sprintf("capability(%d bytes)", len(t)) }

// GoString is String.
func (t Token) GoString() string { return t.String() }

// Format prints String for every verb.
func (t Token) Format(f fmt.State, verb rune) { io.WriteString(f, t.String()) }

// LogValue logs the length only.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }
