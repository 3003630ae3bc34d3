package master

import (
	"hash/fnv"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// Retried namespace mutations are deduplicated by request id: a client
// names each logical call with 16 random bytes and sends the same id on
// every retry of it, so a retry whose first attempt was applied (and made
// durable) before the master died or the answer was lost gets the first
// answer instead of "file exists" or "not found".
//
// A successful call's id is logged inside the mutation's own record
// (opRequest wraps it), so the id is durable exactly when the mutation is,
// and checkpoints carry the table (ckRequest). A failed call changed
// nothing and logged nothing; its answer is remembered in memory only, so
// after a restart its retry is evaluated afresh, which is safe because the
// failed attempt had no effect.
//
// The table is bounded: an entry is dropped once it is older than
// requestTTL or once requestsMax newer entries exist. A retry arriving
// after its entry was dropped is applied again as a new call (and may then
// fail with "exists"). Clients stop retrying after their RetryTimeout
// (2 minutes by default), well inside requestTTL.
const (
	requestIDLen = 16
	requestTTL   = 10 * time.Minute
	requestsMax  = 1 << 18
)

// requestEntry is the first answer to one request id.
type requestEntry struct {
	atMs int64  // when it was answered (master clock), for expiry
	call uint64 // fingerprint of the call, to refuse an id reused for another
	seq  uint64 // position in requestTable.order
	err  error  // nil = success
	// persisted: the answer is in the op log (a success with a record);
	// failures and no-op successes live in memory only.
	persisted bool
}

// requestTable maps recent request ids to their first answers, expiring
// them in arrival order. It is part of state (guarded by Master.mu) and
// changes only through state.apply and remember, so replay rebuilds it.
type requestTable struct {
	byID  map[string]*requestEntry
	order []requestRef // arrival order; order[head:] are live or stale refs
	head  int
	seq   uint64
	max   int   // entries kept at most
	ttlMs int64 // entries older than this (relative to the newest) are dropped
}

// requestRef names an entry in arrival order; a ref whose seq no longer
// matches the entry's is stale (the id was answered again later).
type requestRef struct {
	id  string
	seq uint64
}

func newRequestTable() *requestTable {
	return &requestTable{byID: make(map[string]*requestEntry), max: requestsMax, ttlMs: requestTTL.Milliseconds()}
}

// lookup returns the entry for id, or nil.
func (t *requestTable) lookup(id string) *requestEntry { return t.byID[id] }

// remember records the answer to id at atMs, then expires entries beyond
// the bounds. A repeated id replaces its older entry.
func (t *requestTable) remember(id string, call uint64, atMs int64, err error, persisted bool) {
	t.seq++
	t.byID[id] = &requestEntry{atMs: atMs, call: call, seq: t.seq, err: err, persisted: persisted}
	t.order = append(t.order, requestRef{id: id, seq: t.seq})
	for t.head < len(t.order) {
		ref := t.order[t.head]
		e := t.byID[ref.id]
		if e != nil && e.seq == ref.seq && len(t.byID) <= t.max && e.atMs >= atMs-t.ttlMs {
			break
		}
		if e != nil && e.seq == ref.seq {
			delete(t.byID, ref.id)
		}
		t.order[t.head] = requestRef{}
		t.head++
	}
	// Compact once the dropped prefix dominates, so order stays O(live).
	if t.head > len(t.order)/2 && t.head > 64 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

// each calls fn for every persisted (successful) entry in arrival order.
func (t *requestTable) each(fn func(id string, e *requestEntry) error) error {
	for _, ref := range t.order[t.head:] {
		if e := t.byID[ref.id]; e != nil && e.seq == ref.seq && e.persisted {
			if err := fn(ref.id, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// callFingerprint identifies a call by its kind and the paths it names, so
// a request id reused for a different call is refused rather than answered
// with another call's result. Stable across processes (it is persisted).
func callFingerprint(op byte, paths ...string) uint64 {
	h := fnv.New64a()
	h.Write([]byte{op})
	for _, p := range paths {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// checkRequestID validates a request id: empty (not deduplicated) or
// requestIDLen bytes.
func checkRequestID(id []byte) error {
	if len(id) != 0 && len(id) != requestIDLen {
		return errCode(codeBadArg, "request id of %d bytes, want %d", len(id), requestIDLen)
	}
	return nil
}

// isAnswer reports whether err is an answer about the namespace (not found,
// exists, ...) that a retry must get again, as opposed to a failure of the
// master itself (op log broken), after which a retry may succeed.
func isAnswer(err error) bool {
	return control.Code(err) != controlpb.ErrorCode_ERROR_CODE_UNSPECIFIED
}

// mutation is one namespace call as Master.mutate runs it.
type mutation struct {
	id   []byte // request id; empty = not deduplicated
	call uint64 // callFingerprint of the call
	// record builds the mutation's op log record (under Master.mu, so it
	// may read state such as the next trash id).
	record func() []byte
	// applied runs under Master.mu after the record applied (may be nil).
	applied func()
}

// mutate answers a retry of an already answered request id with its first
// answer, or applies and logs mu's record (with the request id inside it)
// and waits until it is durable. The caller holds the call's path locks,
// so a retry never overtakes its own first attempt: the first attempt
// holds them until its record is durable.
func (m *Master) mutate(mu mutation) error {
	if err := checkRequestID(mu.id); err != nil {
		return err
	}
	id := string(mu.id)
	m.mu.Lock()
	if id != "" {
		if e := m.st.requests.lookup(id); e != nil {
			m.mu.Unlock()
			if e.call != mu.call {
				return errCode(codeBadArg, "request id reused for a different call")
			}
			return e.err
		}
	}
	rec := mu.record()
	now := m.nowMs()
	if id != "" {
		rec = newRec(opRequest).s(id).i(now).u(mu.call).s(string(rec)).b
	}
	t, err := m.applyLocked(rec)
	if err == nil && mu.applied != nil {
		mu.applied()
	}
	if err != nil && id != "" && isAnswer(err) {
		m.st.requests.remember(id, mu.call, now, err, false)
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	return m.waitDurable(t)
}

// answered remembers (in memory) a call that succeeded without a record,
// such as mkdir -p of an existing directory.
func (m *Master) answered(mu mutation) error {
	if err := checkRequestID(mu.id); err != nil {
		return err
	}
	if len(mu.id) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.st.requests.lookup(string(mu.id)); e != nil {
		if e.call != mu.call {
			return errCode(codeBadArg, "request id reused for a different call")
		}
		return e.err
	}
	// Kept in memory only, like a failure: it changed nothing.
	m.st.requests.remember(string(mu.id), mu.call, m.nowMs(), nil, false)
	return nil
}
