package chunkserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gfs-go/gfs/dataplane/store"
	"github.com/gfs-go/gfs/dataplane/wire"
)

var (
	errPushBusy     = errors.New("push buffer full")
	errPushTooLarge = errors.New("push larger than the whole push buffer")
)

// pushed is one buffered push, held until a mutation takes it or it
// expires. buf.B holds exactly the pushed bytes, in O_DIRECT-aligned
// memory so the store can write it without another copy.
type pushed struct {
	buf     *store.Buffer
	expires time.Time
}

// pushBuffer bounds the memory pushed data holds: reserve before reading a
// push's payload, release after the data was written or evicted.
type pushBuffer struct {
	capBytes int64
	ttl      time.Duration
	waiting  atomic.Int32 // pushes waiting for room (tests watch it)

	mu      sync.Mutex
	used    int64                   // reserved bytes; guarded by mu
	entries map[wire.PushID]*pushed // guarded by mu
	freed   chan struct{}           // closed and replaced when space frees; guarded by mu
}

func newPushBuffer(capBytes int64, ttl time.Duration) *pushBuffer {
	return &pushBuffer{capBytes: capBytes, ttl: ttl, entries: make(map[wire.PushID]*pushed), freed: make(chan struct{})}
}

// reserve waits up to wait (or ctx) for n bytes of room.
func (p *pushBuffer) reserve(ctx context.Context, n int64, wait time.Duration) error {
	if n > p.capBytes {
		return errPushTooLarge
	}
	var timer *time.Timer
	for {
		p.mu.Lock()
		if p.used+n <= p.capBytes {
			p.used += n
			p.mu.Unlock()
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		ch := p.freed
		p.mu.Unlock()
		p.evictExpired(time.Now())
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
			p.waiting.Add(1)
			defer p.waiting.Add(-1)
		}
		select {
		case <-ch:
		case <-timer.C:
			return errPushBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// unreserve gives n reserved bytes back.
func (p *pushBuffer) unreserve(n int64) {
	p.mu.Lock()
	p.used -= n
	close(p.freed)
	p.freed = make(chan struct{})
	p.mu.Unlock()
}

// put stores a push whose bytes were reserved; a previous push with the
// same id (a client retry) is replaced and released.
func (p *pushBuffer) put(id wire.PushID, buf *store.Buffer) {
	p.mu.Lock()
	old := p.entries[id]
	p.entries[id] = &pushed{buf: buf, expires: time.Now().Add(p.ttl)}
	p.mu.Unlock()
	if old != nil {
		p.release(old.buf)
	}
}

// take removes and returns the push named id; the caller releases it.
func (p *pushBuffer) take(id wire.PushID) *store.Buffer {
	p.mu.Lock()
	e := p.entries[id]
	delete(p.entries, id)
	p.mu.Unlock()
	if e == nil {
		return nil
	}
	return e.buf
}

// release frees a buffer obtained from take (or never put).
func (p *pushBuffer) release(buf *store.Buffer) {
	n := int64(len(buf.B))
	store.PutBuffer(buf)
	p.unreserve(n)
}

// len returns the number of buffered pushes.
func (p *pushBuffer) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

func (p *pushBuffer) evictExpired(now time.Time) {
	var gone []*store.Buffer
	p.mu.Lock()
	for id, e := range p.entries {
		if now.After(e.expires) {
			delete(p.entries, id)
			gone = append(gone, e.buf)
		}
	}
	p.mu.Unlock()
	for _, b := range gone {
		p.release(b)
	}
}

// evictLoop evicts expired pushes until ctx ends.
func (p *pushBuffer) evictLoop(ctx context.Context) {
	t := time.NewTicker(max(p.ttl/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			p.evictExpired(now)
		}
	}
}

func (p *pushBuffer) releaseAll() {
	p.evictExpired(time.Now().Add(100 * 365 * 24 * time.Hour))
}
