package master

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

func reqID(n byte) []byte { return bytes.Repeat([]byte{n}, requestIDLen) }

func wantCode(t *testing.T, what string, err error, want controlpb.ErrorCode) {
	t.Helper()
	if want == 0 && err != nil {
		t.Fatalf("%s: %v, want success", what, err)
	}
	if want != 0 && control.Code(err) != want {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// TestRequestRetryAfterRestart: each namespace mutation applied and made
// durable, then the master restarted (its answer lost), then the same call
// retried with its request id: the retry gets the first answer (success),
// while a new call with another id gets the honest answer (exists, not
// found). Once across a plain restart (the id replayed from the op log) and
// once across a checkpoint that truncated the log.
func TestRequestRetryAfterRestart(t *testing.T) {
	for _, ckpt := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint=%v", ckpt), func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := e.ctx()
			restart := func() {
				t.Helper()
				if ckpt {
					if err := e.m.checkpoint(); err != nil {
						t.Fatal(err)
					}
				}
				e.restartMaster()
			}
			mkdir := &controlpb.MkdirRequest{Path: "/d", RequestId: reqID(1)}
			create := &controlpb.CreateRequest{Path: "/d/f", RequestId: reqID(2)}
			rename := &controlpb.RenameRequest{Src: "/d/f", Dst: "/d/g", RequestId: reqID(3)}
			del := &controlpb.DeleteRequest{Path: "/d/g", RequestId: reqID(4)}
			steps := []struct {
				name  string
				call  func() error
				fresh func() error // the same call under a new request id
				want  controlpb.ErrorCode
			}{
				{"mkdir", func() error { _, err := e.mc.Mkdir(ctx, mkdir); return err },
					func() error {
						_, err := e.mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/d", RequestId: reqID(11)})
						return err
					}, codeExists},
				{"create", func() error { _, err := e.mc.Create(ctx, create); return err },
					func() error {
						_, err := e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/d/f", RequestId: reqID(12)})
						return err
					}, codeExists},
				{"rename", func() error { _, err := e.mc.Rename(ctx, rename); return err },
					func() error {
						_, err := e.mc.Rename(ctx, &controlpb.RenameRequest{Src: "/d/f", Dst: "/d/g", RequestId: reqID(13)})
						return err
					}, codeNotFound},
				{"delete", func() error { _, err := e.mc.Delete(ctx, del); return err },
					func() error {
						_, err := e.mc.Delete(ctx, &controlpb.DeleteRequest{Path: "/d/g", RequestId: reqID(14)})
						return err
					}, codeNotFound},
			}
			for _, s := range steps {
				wantCode(t, s.name, s.call(), 0)
				restart()
				wantCode(t, s.name+" retried after restart", s.call(), 0)
				wantCode(t, s.name+" retried twice", s.call(), 0)
				wantCode(t, s.name+" with a new request id", s.fresh(), s.want)
			}
			e.m.mu.RLock()
			defer e.m.mu.RUnlock()
			if e.m.st.nodes["/d/f"] != nil || e.m.st.nodes["/d/g"] != nil || e.m.st.nodes["/d"] == nil {
				t.Fatalf("namespace after the retries: %v", e.m.st.subtree("/"))
			}
		})
	}
}

// TestRequestRetrySameIncarnation: a retry of a failed call gets the same
// error even after the namespace changed; an id reused for another call
// and a malformed id are refused and change nothing; calls without an id
// (older clients) are not deduplicated.
func TestRequestRetrySameIncarnation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx()
	failing := &controlpb.CreateRequest{Path: "/p/f", RequestId: reqID(1)}
	_, err := e.mc.Create(ctx, failing)
	wantCode(t, "create without parent", err, codeNotFound)
	_, err = e.mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/p", RequestId: reqID(2)})
	wantCode(t, "mkdir parent", err, 0)
	_, err = e.mc.Create(ctx, failing)
	wantCode(t, "retry of the failed create", err, codeNotFound)

	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/p/other", RequestId: reqID(2)})
	wantCode(t, "id reused for another call", err, codeBadArg)
	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/p/short", RequestId: []byte{1, 2, 3}})
	wantCode(t, "short request id", err, codeBadArg)

	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/p/g"})
	wantCode(t, "create without id", err, 0)
	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/p/g"})
	wantCode(t, "create without id again", err, codeExists)

	// mkdir -p of an existing directory changes nothing and is remembered.
	mk := &controlpb.MkdirRequest{Path: "/p", Parents: true, RequestId: reqID(3)}
	_, err = e.mc.Mkdir(ctx, mk)
	wantCode(t, "mkdir -p existing", err, 0)
	_, err = e.mc.Mkdir(ctx, mk)
	wantCode(t, "mkdir -p retried", err, 0)

	e.m.mu.RLock()
	defer e.m.mu.RUnlock()
	for _, p := range []string{"/p/other", "/p/short", "/p/f"} {
		if e.m.st.nodes[p] != nil {
			t.Errorf("%s exists after a refused call", p)
		}
	}
}

// TestRequestTableBounds: entries beyond requestsMax or older than
// requestTTL are forgotten (a retry that late is a new call), also across
// a restart, and the table never holds more than its bound.
func TestRequestTableBounds(t *testing.T) {
	tab := newRequestTable()
	tab.max = 3
	for i := range 10 {
		tab.remember(string(reqID(byte(i))), 1, int64(i), nil, true)
		if len(tab.byID) > tab.max {
			t.Fatalf("after %d: %d entries, bound %d", i+1, len(tab.byID), tab.max)
		}
	}
	if tab.lookup(string(reqID(6))) != nil || tab.lookup(string(reqID(7))) == nil {
		t.Fatalf("count bound kept the wrong entries")
	}
	// A repeated id moves to the back and its older ref goes stale.
	tab.remember(string(reqID(7)), 1, 10, nil, true)
	tab.remember(string(reqID(20)), 1, 11, nil, true)
	if tab.lookup(string(reqID(7))) == nil || tab.lookup(string(reqID(8))) != nil {
		t.Fatalf("repeated id: %v", tab.byID)
	}
	n := 0
	tab.each(func(string, *requestEntry) error { n++; return nil })
	if n != len(tab.byID) {
		t.Fatalf("each visited %d of %d entries", n, len(tab.byID))
	}

	e := newEnv(t, nil)
	ctx := e.ctx()
	old := &controlpb.CreateRequest{Path: "/old", RequestId: reqID(1)}
	_, err := e.mc.Create(ctx, old)
	wantCode(t, "create", err, 0)
	e.clock.Advance(requestTTL + time.Second)
	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/new", RequestId: reqID(2)})
	wantCode(t, "create later", err, 0)
	_, err = e.mc.Create(ctx, old)
	wantCode(t, "retry older than the bound", err, codeExists)
	e.restartMaster()
	_, err = e.mc.Create(ctx, old)
	wantCode(t, "retry older than the bound, after restart", err, codeExists)
	_, err = e.mc.Create(ctx, &controlpb.CreateRequest{Path: "/new", RequestId: reqID(2)})
	wantCode(t, "recent retry after restart", err, 0)
}
