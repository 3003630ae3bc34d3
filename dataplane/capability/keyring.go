package capability

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Defaults of KeyringOptions.
const (
	DefaultRotateEvery = 10 * time.Minute
	DefaultTTL         = 10 * time.Minute
)

// ErrBadOptions reports invalid options.
var ErrBadOptions = errors.New("capability: bad options")

// ErrNoOps reports an Issue call without any (or with unknown) operations.
var ErrNoOps = errors.New("capability: no valid operations requested")

// KeyringOptions tunes a Keyring. The zero value is valid.
type KeyringOptions struct {
	// RotateEvery is how long a key signs before the next one takes over;
	// 0 = DefaultRotateEvery.
	RotateEvery time.Duration
	// TTL is the lifetime of issued tokens; 0 = DefaultTTL. A key stays
	// listed for TTL after it stopped signing.
	TTL time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Rand is the source of key ids and secrets; nil = crypto/rand.Reader.
	Rand io.Reader
}

// Keyring is the master's set of signing keys. Safe for concurrent use.
type Keyring struct {
	rotateEvery time.Duration
	ttl         time.Duration
	now         func() time.Time
	rand        io.Reader

	mu sync.Mutex
	// Guarded by mu:
	cur, next *macer    // cur signs; next is announced, signs from curUntil
	curUntil  time.Time // cur stops signing at this instant
	prev      []Key     // retired keys, listed until they expire
	nextID    uint32
}

// NewKeyring creates a keyring with a fresh current and next key.
func NewKeyring(opts KeyringOptions) (*Keyring, error) {
	if opts.RotateEvery < 0 || opts.TTL < 0 {
		return nil, fmt.Errorf("keyring: negative RotateEvery or TTL: %w", ErrBadOptions)
	}
	k := &Keyring{rotateEvery: opts.RotateEvery, ttl: opts.TTL, now: opts.Now, rand: opts.Rand}
	if k.rotateEvery == 0 {
		k.rotateEvery = DefaultRotateEvery
	}
	if k.ttl == 0 {
		k.ttl = DefaultTTL
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.rand == nil {
		k.rand = rand.Reader
	}
	// Random first id: a restarted master's keys do not reuse the ids of
	// its predecessor's (chunkservers may still hold those for a while).
	var b [4]byte
	if _, err := io.ReadFull(k.rand, b[:]); err != nil {
		return nil, fmt.Errorf("keyring: key id: %w", err)
	}
	k.nextID = binary.LittleEndian.Uint32(b[:])
	now := k.now()
	var err error
	if k.cur, err = k.newKey(now.Add(k.rotateEvery)); err != nil {
		return nil, err
	}
	k.curUntil = now.Add(k.rotateEvery)
	if k.next, err = k.newKey(k.curUntil.Add(k.rotateEvery)); err != nil {
		return nil, err
	}
	return k, nil
}

// TTL returns the lifetime of issued tokens.
func (k *Keyring) TTL() time.Duration { return k.ttl }

// newKey makes a key that signs until signsUntil. Called with mu held (or
// before k is shared).
func (k *Keyring) newKey(signsUntil time.Time) (*macer, error) {
	var secret [SecretSize]byte
	if _, err := io.ReadFull(k.rand, secret[:]); err != nil {
		return nil, fmt.Errorf("keyring: key secret: %w", err)
	}
	key, err := NewKey(k.nextID, secret[:], signsUntil.Add(k.ttl))
	if err != nil {
		return nil, err
	}
	k.nextID++
	return newMacer(key), nil
}

// advance rotates keys due at now. Called with mu held.
func (k *Keyring) advance(now time.Time) error {
	for !now.Before(k.curUntil) {
		k.prev = append(k.prev, k.cur.key)
		if now.Before(k.curUntil.Add(k.rotateEvery)) {
			// On schedule: the announced key takes over.
			k.cur, k.curUntil = k.next, k.curUntil.Add(k.rotateEvery)
		} else {
			// Idle for more than a period (a stopped clock in tests, a
			// suspended process): start afresh from now. Both keys are new;
			// chunkservers learn them with the next Keys call.
			m, err := k.newKey(now.Add(k.rotateEvery))
			if err != nil {
				return err
			}
			k.cur, k.curUntil = m, now.Add(k.rotateEvery)
		}
		m, err := k.newKey(k.curUntil.Add(k.rotateEvery))
		if err != nil {
			return err
		}
		k.next = m
	}
	kept := k.prev[:0]
	for _, p := range k.prev {
		if now.Before(p.Expires) {
			kept = append(kept, p)
		}
	}
	clear(k.prev[len(kept):])
	k.prev = kept
	return nil
}

// Keys returns every key a chunkserver must know now: the retired keys whose
// tokens may still be valid, the current key and the announced next one.
// The master sends them to chunkservers with every heartbeat answer.
func (k *Keyring) Keys() ([]Key, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.advance(k.now()); err != nil {
		return nil, err
	}
	keys := make([]Key, 0, len(k.prev)+2)
	keys = append(keys, k.prev...)
	return append(keys, k.cur.key, k.next.key), nil
}

// Issue signs a token for chunk handle allowing ops, valid for TTL, issued
// to clientID (0 = unnamed), and appends its encoding (Size bytes) to dst.
func (k *Keyring) Issue(dst []byte, handle uint64, ops Op, clientID uint64) ([]byte, error) {
	if ops == 0 || ops&^opAll != 0 {
		return dst, fmt.Errorf("issue for chunk %016x with ops %s: %w", handle, ops, ErrNoOps)
	}
	k.mu.Lock()
	now := k.now()
	if err := k.advance(now); err != nil {
		k.mu.Unlock()
		return dst, err
	}
	m := k.cur
	k.mu.Unlock()
	c := Capability{Handle: handle, Ops: ops, Expiry: now.Add(k.ttl), KeyID: m.key.ID, ClientID: clientID}
	if c.Expiry.After(m.key.Expires) {
		c.Expiry = m.key.Expires
	}
	start := len(dst)
	dst = c.appendBody(dst)
	m.sign(dst[start:], &c.MAC)
	return append(dst, c.MAC[:]...), nil
}
