package chunkserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// capClock is a settable clock shared by the keyring and the servers'
// verifiers.
type capClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *capClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *capClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// capCluster is three chunkservers enforcing capabilities with the keys of
// one keyring (the master's role), and chunk 7 and chunk 8 on all three,
// primary on the first.
type capCluster struct {
	servers []*Server
	kr      *capability.Keyring
	clk     *capClock
	dc      *dataclient.Client
	a, b    *replicaSet
}

func newCapCluster(t *testing.T) *capCluster {
	t.Helper()
	cc := &capCluster{clk: &capClock{t: time.Now()}}
	var err error
	cc.kr, err = capability.NewKeyring(capability.KeyringOptions{RotateEvery: time.Minute, TTL: time.Minute, Now: cc.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s := startServer(t, func(o *Options) {
			o.Capabilities = CapabilitiesRequired
			o.testCapabilityClock = cc.clk.now
		})
		cc.servers = append(cc.servers, s)
	}
	cc.syncKeys(t)
	cc.a = newChunk(t, addrsOf(cc.servers), 7, 0)
	cc.b = newChunk(t, addrsOf(cc.servers), 8, 0)
	cc.grantApply(t, cc.a)
	cc.grantApply(t, cc.b)
	cc.dc = newClient(t)
	return cc
}

// grantApply grants rs's lease again with an apply capability, as the
// master does (and as its lease extensions do, with a fresh one).
func (cc *capCluster) grantApply(t *testing.T, rs *replicaSet) {
	t.Helper()
	req := grantLease(rs.handle, rs.version, 60000, rs.secondaries()...)
	req.ApplyCapability = cc.token(t, rs.handle, capability.OpApply)
	if _, err := rs.ctls[rs.primary].GrantLease(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// syncKeys is a heartbeat: every server gets the keyring's current keys.
func (cc *capCluster) syncKeys(t *testing.T) {
	t.Helper()
	keys, err := cc.kr.Keys()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cc.servers {
		s.verifier.SetKeys(keys)
	}
}

func (cc *capCluster) token(t *testing.T, h uint64, ops capability.Op) []byte {
	t.Helper()
	tok, err := cc.kr.Issue(nil, h, ops, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (cc *capCluster) refusals() uint64 {
	var n uint64
	for _, s := range cc.servers {
		n += s.Refusals().Total()
	}
	return n
}

func withTok(tok []byte) context.Context {
	return capability.NewContext(context.Background(), tok)
}

const rwa = capability.OpRead | capability.OpWrite | capability.OpAppend

// TestCapabilityRefusals: requests without a valid capability for the
// chunk and operation are refused with ErrDenied, counted, and leave every
// replica of the chunk unchanged; a valid one goes through the whole chain.
func TestCapabilityRefusals(t *testing.T) {
	noLeaks(t)
	cc := newCapCluster(t)
	chain, primary := cc.a.addrs, cc.a.primaryAddr()
	orig := bytes.Repeat([]byte("A"), 200<<10)
	if err := cc.dc.Write(withTok(cc.token(t, 7, rwa)), chain, primary, 7, 1, 0, orig, false); err != nil {
		t.Fatalf("write with a valid capability: %v", err)
	}

	good := cc.token(t, 7, rwa)
	forged := append([]byte(nil), good...)
	forged[len(forged)-1] ^= 1
	other := cc.token(t, 8, rwa)
	readOnly := cc.token(t, 7, capability.OpRead)
	otherKeyring, _ := capability.NewKeyring(capability.KeyringOptions{Now: cc.clk.now})
	unknown, _ := otherKeyring.Issue(nil, 7, rwa, 0)
	// Expired: issued by a keyring (known to the servers) whose TTL passed.
	expiredKR, _ := capability.NewKeyring(capability.KeyringOptions{TTL: time.Second, Now: cc.clk.now})
	keys, _ := expiredKR.Keys()
	mine, _ := cc.kr.Keys()
	for _, s := range cc.servers {
		s.verifier.SetKeys(append(keys, mine...))
	}
	expired, _ := expiredKR.Issue(nil, 7, rwa, 0)
	cc.clk.advance(2 * time.Second)

	big := bytes.Repeat([]byte("B"), 300<<10) // pushed
	small := []byte("inline")                 // inline
	for _, tc := range []struct {
		name string
		tok  []byte
	}{
		{"missing", nil}, {"forged", forged}, {"other chunk", other}, {"read only", readOnly},
		{"unknown key", unknown}, {"expired", expired}, {"garbage", []byte("not a capability")},
	} {
		before := cc.refusals()
		ctx := withTok(tc.tok)
		for _, data := range [][]byte{big, small} {
			err := cc.dc.Write(ctx, chain, primary, 7, 1, 0, data, false)
			if !errors.Is(err, dataclient.ErrDenied) {
				t.Fatalf("%s: write of %d bytes: %v, want ErrDenied", tc.name, len(data), err)
			}
			if _, err := cc.dc.Append(ctx, chain, primary, 7, 1, data, false); !errors.Is(err, dataclient.ErrDenied) {
				t.Fatalf("%s: append: %v, want ErrDenied", tc.name, err)
			}
		}
		if tc.name != "read only" {
			if _, err := cc.dc.Read(ctx, chain[1], 7, 1, 0, make([]byte, 10)); !errors.Is(err, dataclient.ErrDenied) {
				t.Fatalf("%s: read: %v, want ErrDenied", tc.name, err)
			}
			if _, err := cc.dc.Length(ctx, chain[2], 7, 1); !errors.Is(err, dataclient.ErrDenied) {
				t.Fatalf("%s: length: %v, want ErrDenied", tc.name, err)
			}
		}
		if cc.refusals() <= before {
			t.Fatalf("%s: refusals not counted", tc.name)
		}
	}
	// Every replica still holds exactly the original data.
	gctx := withTok(cc.token(t, 7, capability.OpRead))
	for _, addr := range chain {
		n, err := cc.dc.Length(gctx, addr, 7, 1)
		if err != nil || n != int64(len(orig)) {
			t.Fatalf("%s: length %d, %v; want %d", addr, n, err, len(orig))
		}
		got := make([]byte, n)
		if m, err := cc.dc.Read(gctx, addr, 7, 1, 0, got); (err != nil && err != io.EOF) || m != len(got) || !bytes.Equal(got, orig) {
			t.Fatalf("%s: chunk changed by refused requests (%d bytes, %v)", addr, m, err)
		}
	}
	r := cc.servers[0].Refusals()
	if r.Missing == 0 || r.Forged == 0 || r.WrongChunk == 0 || r.WrongOp == 0 || r.UnknownKey == 0 || r.Expired == 0 || r.Malformed == 0 {
		t.Fatalf("primary's refusal counts lack a reason: %+v", r)
	}
}

// TestCapabilityOtherChunk: a capability stolen for one chunk cannot read
// another, even on the same server.
func TestCapabilityOtherChunk(t *testing.T) {
	noLeaks(t)
	cc := newCapCluster(t)
	if err := cc.dc.Write(withTok(cc.token(t, 8, rwa)), cc.b.addrs, cc.b.primaryAddr(), 8, 1, 0, []byte("secret of chunk 8"), false); err != nil {
		t.Fatal(err)
	}
	stolen := withTok(cc.token(t, 7, capability.OpRead))
	for _, addr := range cc.b.addrs {
		buf := make([]byte, 17)
		if n, err := cc.dc.Read(stolen, addr, 8, 1, 0, buf); !errors.Is(err, dataclient.ErrDenied) || n != 0 {
			t.Fatalf("%s: read chunk 8 with chunk 7's capability: %d bytes, %v", addr, n, err)
		}
	}
	if got := cc.servers[1].Refusals().WrongChunk; got != 1 {
		t.Fatalf("wrong-chunk refusals on a secondary: %d, want 1", got)
	}
}

// TestCapabilityRotation: a client refreshing its capability every half
// TTL keeps writing and reading while keys rotate many times and servers
// learn keys only from periodic heartbeats.
func TestCapabilityRotation(t *testing.T) {
	noLeaks(t)
	cc := newCapCluster(t)
	tok, issued := cc.token(t, 7, rwa), cc.clk.now()
	var want []byte
	for step := 0; step < 40; step++ {
		cc.clk.advance(10 * time.Second) // 400 s: keys rotate every minute
		if step%2 == 0 {
			cc.syncKeys(t)
		}
		if cc.clk.now().Sub(issued) >= 30*time.Second {
			tok, issued = cc.token(t, 7, rwa), cc.clk.now()
			// The primary's lease extension brings a fresh apply
			// capability as well.
			cc.servers[0].leases.extend(7, 1, cc.token(t, 7, capability.OpApply), time.Now(), time.Minute, 0)
		}
		rec := []byte{byte(step)}
		if _, err := cc.dc.Append(withTok(tok), cc.a.addrs, cc.a.primaryAddr(), 7, 1, rec, false); err != nil {
			t.Fatalf("step %d: append: %v", step, err)
		}
		want = append(want, rec...)
	}
	got := make([]byte, len(want))
	if n, err := cc.dc.Read(withTok(tok), cc.a.addrs[2], 7, 1, 0, got); n != len(want) || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (%v): %x, want %x", n, err, got[:n], want)
	}
	if r := cc.refusals(); r != 0 {
		t.Fatalf("%d refusals of a running client", r)
	}
}

// TestCapabilitiesOffByDefault: a plaintext server does not check.
func TestCapabilitiesOffByDefault(t *testing.T) {
	noLeaks(t)
	s := startServer(t, nil)
	if s.RequiresCapabilities() {
		t.Fatal("plaintext server requires capabilities by default")
	}
	rs := newChunk(t, []string{s.Addr()}, 3, 0)
	dc := newClient(t)
	if err := dc.Write(context.Background(), rs.addrs, rs.primaryAddr(), 3, 1, 0, []byte("x"), false); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCapabilityRead measures the cost of capability checks on the
// data channel: 4 KiB reads (where per-request costs dominate) against the
// same server with checks off (the baseline).
func BenchmarkCapabilityRead(b *testing.B) {
	kr, err := capability.NewKeyring(capability.KeyringOptions{})
	if err != nil {
		b.Fatal(err)
	}
	keys, _ := kr.Keys()
	tok, _ := kr.Issue(nil, 1, rwa, 0)
	for _, mode := range []struct {
		name string
		m    CapabilityMode
	}{{"off", CapabilitiesOff}, {"required", CapabilitiesRequired}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := startBenchServer(b, func(o *Options) { o.Capabilities = mode.m })
			srv.verifier.SetKeys(keys)
			benchChunks(b, []*Server{srv}, 1, 1)
			dc := dataclient.New(dataclient.Options{})
			defer dc.Close()
			ctx := capability.NewContext(context.Background(), tok)
			if err := dc.Write(ctx, []string{srv.Addr()}, srv.Addr(), 1, 1, 0, make([]byte, 1<<20), false); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 4<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := dc.Read(ctx, srv.Addr(), 1, 1, int64(i%256)*4096, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestApplyNeedsApplyCapability: a secondary takes apply rounds only with
// the master's apply capability for the chunk, which only primaries get: a
// client's write and append capability does not let anyone send rounds
// straight to a secondary (naming the primary) and make it diverge.
func TestApplyNeedsApplyCapability(t *testing.T) {
	noLeaks(t)
	cc := newCapCluster(t)
	forger, victim := cc.servers[2], cc.servers[1]
	ops := []applyOp{{kind: wire.ApplyInline, off: 0, data: []byte("forged")}}
	var r peerReply
	if err := forger.sendApply(victim.Addr(), 7, 1, 1000, ops, false, cc.token(t, 7, rwa), &r); err != nil {
		t.Fatal(err)
	}
	if r.status != wire.StatusDenied {
		t.Fatalf("round with a write capability: status %v, want denied", r.status)
	}
	if n, err := cc.dc.Length(withTok(cc.token(t, 7, rwa)), victim.Addr(), 7, 1); err != nil || n != 0 {
		t.Fatalf("victim's chunk after a refused round: length %d, %v", n, err)
	}
	// The apply capability is what the secondary wants.
	if err := forger.sendApply(victim.Addr(), 7, 1, 1000, ops, false, cc.token(t, 7, capability.OpApply), &r); err != nil || r.status != wire.StatusOK {
		t.Fatalf("round with an apply capability: %v, status %v", err, r.status)
	}
}
