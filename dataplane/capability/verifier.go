package capability

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"
)

// ErrRefused matches (errors.Is) every refusal Verify returns.
var ErrRefused = errors.New("capability refused")

// refusal is a sentinel that also matches ErrRefused.
type refusal struct{ msg string }

func (r *refusal) Error() string        { return r.msg }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

// Refusal reasons, one sentinel each. Check order in Verify: missing,
// malformed, unknown key, forged, expired, wrong chunk, wrong operation.
var (
	// ErrMissing: the request carries no token.
	ErrMissing error = &refusal{"capability: missing"}
	// ErrUnknownKey: the token names a key the verifier does not hold.
	ErrUnknownKey error = &refusal{"capability: unknown key"}
	// ErrForged: the MAC does not match (altered or made without the key).
	ErrForged error = &refusal{"capability: bad signature"}
	// ErrExpired: the token (or its key) has expired.
	ErrExpired error = &refusal{"capability: expired"}
	// ErrWrongChunk: the token is for another chunk.
	ErrWrongChunk error = &refusal{"capability: issued for another chunk"}
	// ErrWrongOp: the token does not allow the operation.
	ErrWrongOp error = &refusal{"capability: operation not allowed"}
)

const (
	reasonMissing = iota
	reasonMalformed
	reasonUnknownKey
	reasonForged
	reasonExpired
	reasonWrongChunk
	reasonWrongOp
	numReasons
)

// malformedRefusal wraps a Decode error so it matches both ErrMalformed and
// ErrRefused.
type malformedRefusal struct{ err error }

func (m *malformedRefusal) Error() string        { return m.err.Error() }
func (m *malformedRefusal) Unwrap() error        { return m.err }
func (m *malformedRefusal) Is(target error) bool { return target == ErrRefused }

// Refusals counts Verify's refusals by reason.
type Refusals struct {
	Missing, Malformed, UnknownKey, Forged, Expired, WrongChunk, WrongOp uint64
}

// Total is the sum of all counts.
func (r Refusals) Total() uint64 {
	return r.Missing + r.Malformed + r.UnknownKey + r.Forged + r.Expired + r.WrongChunk + r.WrongOp
}

// VerifierOptions tunes a Verifier. The zero value is valid.
type VerifierOptions struct {
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// ClockSkew is how long past its expiry a token is still accepted, to
	// absorb clock differences between master and chunkserver; 0 = none.
	ClockSkew time.Duration
}

// Verifier checks tokens on a chunkserver against the keys the master
// shared. Safe for concurrent use; Verify takes no lock and, when it
// accepts, allocates nothing.
type Verifier struct {
	now      func() time.Time
	skew     time.Duration
	keys     atomic.Pointer[map[uint32]*macer] // replaced whole by SetKeys
	refusals [numReasons]atomic.Uint64
}

// NewVerifier returns a verifier that knows no keys yet (it refuses every
// token with ErrUnknownKey until SetKeys).
func NewVerifier(opts VerifierOptions) *Verifier {
	v := &Verifier{now: opts.Now, skew: opts.ClockSkew}
	if v.now == nil {
		v.now = time.Now
	}
	if v.skew < 0 {
		v.skew = 0
	}
	empty := map[uint32]*macer{}
	v.keys.Store(&empty)
	return v
}

// SetKeys replaces the verifier's keys with keys (the master's complete
// list): keys it no longer lists are forgotten. Unchanged keys keep their
// pooled hash state.
func (v *Verifier) SetKeys(keys []Key) {
	old := *v.keys.Load()
	m := make(map[uint32]*macer, len(keys))
	for _, k := range keys {
		if o, ok := old[k.ID]; ok && o.key == k {
			m[k.ID] = o
			continue
		}
		m[k.ID] = newMacer(k)
	}
	v.keys.Store(&m)
}

// KeyIDs returns the ids of the keys the verifier holds, sorted.
func (v *Verifier) KeyIDs() []uint32 {
	m := *v.keys.Load()
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// Verify checks that token is a genuine, unexpired capability for chunk
// handle allowing every operation in op, and returns it decoded. A refusal
// wraps one of ErrMissing, ErrMalformed, ErrUnknownKey, ErrForged,
// ErrExpired, ErrWrongChunk, ErrWrongOp (all match ErrRefused) and is
// counted; its message never contains key material or the MAC.
func (v *Verifier) Verify(token []byte, handle uint64, op Op) (Capability, error) {
	return v.verify(token, handle, true, op, true)
}

// VerifyAnyOp is Verify accepting a token that allows at least one
// operation of anyOf (a secondary applying a round of writes and appends,
// a source serving a read or a copy).
func (v *Verifier) VerifyAnyOp(token []byte, handle uint64, anyOf Op) (Capability, error) {
	return v.verify(token, handle, true, anyOf, false)
}

// VerifyAnyChunk is VerifyAnyOp without the chunk test, for requests that
// name no chunk (a push buffers data a later mutation, checked itself,
// writes into one).
func (v *Verifier) VerifyAnyChunk(token []byte, anyOf Op) (Capability, error) {
	return v.verify(token, 0, false, anyOf, false)
}

func (v *Verifier) verify(token []byte, handle uint64, checkHandle bool, op Op, all bool) (Capability, error) {
	if len(token) == 0 {
		v.refusals[reasonMissing].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: %w", handle, ErrMissing)
	}
	c, err := Decode(token)
	if err != nil {
		v.refusals[reasonMalformed].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: %w", handle, &malformedRefusal{err})
	}
	m, ok := (*v.keys.Load())[c.KeyID]
	if !ok {
		v.refusals[reasonUnknownKey].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: key %d: %w", handle, c.KeyID, ErrUnknownKey)
	}
	// The MAC first: nothing else in the token is trusted before it matches.
	if !m.equal(token[:bodySize], token[bodySize:]) {
		v.refusals[reasonForged].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: key %d: %w", handle, c.KeyID, ErrForged)
	}
	now := v.now()
	if !now.Before(c.Expiry.Add(v.skew)) || !now.Before(m.key.Expires.Add(v.skew)) {
		v.refusals[reasonExpired].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: token expired at %s: %w", handle, c.Expiry.UTC().Format(time.RFC3339), ErrExpired)
	}
	if checkHandle && c.Handle != handle {
		v.refusals[reasonWrongChunk].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: token for chunk %016x: %w", handle, c.Handle, ErrWrongChunk)
	}
	if op == 0 || (all && c.Ops&op != op) || (!all && c.Ops&op == 0) {
		v.refusals[reasonWrongOp].Add(1)
		return Capability{}, fmt.Errorf("chunk %016x: %s requested, token allows %s: %w", handle, op, c.Ops, ErrWrongOp)
	}
	return c, nil
}

// Refusals returns the refusal counts so far.
func (v *Verifier) Refusals() Refusals {
	return Refusals{
		Missing:    v.refusals[reasonMissing].Load(),
		Malformed:  v.refusals[reasonMalformed].Load(),
		UnknownKey: v.refusals[reasonUnknownKey].Load(),
		Forged:     v.refusals[reasonForged].Load(),
		Expired:    v.refusals[reasonExpired].Load(),
		WrongChunk: v.refusals[reasonWrongChunk].Load(),
		WrongOp:    v.refusals[reasonWrongOp].Load(),
	}
}
