package dataclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// closeServerSide closes every connection the fake accepted so far, as a
// chunkserver does with connections idle past its IdleTimeout.
func (f *fakeServer) closeServerSide() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

func serveLength(w io.Writer, h wire.Header, _, _ []byte) {
	answer(w, h, wire.StatusOK, &wire.LengthResponse{Length: 1234}, nil)
}

// TestStalePooledConnection: a pooled connection the server closed while
// it sat in the pool costs the next request nothing: found before reuse
// (connstate.PeerClosed) when it sat long enough to be checked, else the
// request fails on it before any answer and is sent again, once, on a new
// connection. Reads and round trips both.
func TestStalePooledConnection(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	for _, tc := range []struct {
		name       string
		checkAfter time.Duration
	}{
		{"checked before reuse", 0},
		{"retried after failing", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func(old time.Duration) { staleCheckAfter = old }(staleCheckAfter)
			staleCheckAfter = tc.checkAfter
			f := startFake(t, func(w io.Writer, h wire.Header, meta, payload []byte) {
				if h.Op == wire.OpLength {
					serveLength(w, h, meta, payload)
					return
				}
				serveData(chunk)(w, h, meta, payload)
			})
			c := New(Options{})
			defer c.Close()
			ctx := context.Background()
			addr := f.lis.Addr().String()
			for round := 0; round < 3; round++ {
				if n, err := c.Length(ctx, addr, 1, 0); err != nil || n != 1234 {
					t.Fatalf("round %d: length %d, %v", round, n, err)
				}
				f.closeServerSide()
				if tc.checkAfter == 0 {
					// Let the FIN arrive, so the check has something to see.
					time.Sleep(50 * time.Millisecond)
				}
				buf := make([]byte, len(chunk))
				if n, err := c.Read(ctx, addr, 1, 0, 0, buf); (err != nil && err != io.EOF) || n != len(chunk) || !bytes.Equal(buf, chunk) {
					t.Fatalf("round %d: read on a stale pooled connection: %d, %v", round, n, err)
				}
				f.closeServerSide()
				if tc.checkAfter == 0 {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if got := f.accepts.Load(); got != 6 {
				t.Fatalf("%d connections for 6 requests each after a server-side close, want 6", got)
			}
		})
	}
}

// TestStaleRetryOnlyOnce: a request is sent again only when it failed on
// a pooled connection before any byte of the answer, and only once; a
// failure on a new connection is returned as it is.
func TestStaleRetryOnlyOnce(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	defer func(old time.Duration) { staleCheckAfter = old }(staleCheckAfter)
	staleCheckAfter = time.Hour
	var served atomic.Int32
	f := startFake(t, func(w io.Writer, h wire.Header, meta, payload []byte) {
		if served.Add(1) == 1 {
			serveLength(w, h, meta, payload)
			return
		}
		w.(net.Conn).Close() // read the request, then hang up: never answers
	})
	c := New(Options{})
	defer c.Close()
	ctx := context.Background()
	addr := f.lis.Addr().String()
	if _, err := c.Length(ctx, addr, 1, 0); err != nil {
		t.Fatal(err)
	}
	// Pooled connection: tried, fails, tried once more on a new one.
	if _, err := c.Length(ctx, addr, 1, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("length from a server that hangs up: %v, want ErrUnavailable", err)
	}
	if got := f.accepts.Load(); got != 2 {
		t.Fatalf("%d connections, want 2 (the pooled one and one retry)", got)
	}
	// New connection (nothing pooled): no retry.
	if _, err := c.Length(ctx, addr, 1, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("length from a server that hangs up: %v, want ErrUnavailable", err)
	}
	if got := f.accepts.Load(); got != 3 {
		t.Fatalf("%d connections, want 3 (a failure on a new connection is not retried)", got)
	}
}
