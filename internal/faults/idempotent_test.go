package faults

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// answerProxy forwards TCP connections to a target. While dropping it
// swallows everything the target sends (counting it), so a call reaches
// the master and is applied but its answer never reaches the client; while
// refusing it closes new connections at once.
type answerProxy struct {
	t      *testing.T
	lis    net.Listener
	target string

	mu       sync.Mutex
	dropping bool
	refusing bool
	dropped  int // bytes swallowed since dropping began
	conns    map[net.Conn]struct{}

	wg sync.WaitGroup
}

func newAnswerProxy(t *testing.T, target string) *answerProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &answerProxy{t: t, lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *answerProxy) addr() string { return p.lis.Addr().String() }

func (p *answerProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refusing
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // client -> master: as is
			defer p.wg.Done()
			_, _ = io.Copy(s, c)
			p.drop(c, s)
		}()
		go func() { // master -> client: swallowed while dropping
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					p.mu.Lock()
					drop := p.dropping
					if drop {
						p.dropped += n
					}
					p.mu.Unlock()
					if !drop {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
				}
				if err != nil {
					break
				}
			}
			p.drop(c, s)
		}()
	}
}

func (p *answerProxy) drop(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// set switches dropping and refusing; dropping restarts the count.
func (p *answerProxy) set(dropping, refusing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropping, p.refusing = dropping, refusing
	if dropping {
		p.dropped = 0
	}
}

func (p *answerProxy) droppedBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}

// breakAll closes every forwarded connection.
func (p *answerProxy) breakAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *answerProxy) close() {
	p.lis.Close()
	p.breakAll()
	p.wg.Wait()
}

// answerBytes is more than any frame the master sends unasked (an HTTP/2
// ping or window update is 17 bytes or less): once this much of the
// master's output was swallowed, the call's answer (headers, message,
// trailers) was sent, and the master answers a namespace call only after
// its record is durable.
const answerBytes = 40

// Scenario 12 (idem): a namespace call applied and durable, the master
// killed (-9) before its answer reaches the client, then restarted. The
// client library's retry of create, rename, mkdir and delete gets the first
// answer (success), while the same call made anew gets the honest one
// (exists / not found).
func TestNamespaceRetryAfterMasterDeath(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 1, replication: 1, checkpointEvery: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	proxy := newAnswerProxy(t, c.masterAddr)
	cl := dialMaster(t, proxy.addr()) // the client whose answers get lost
	direct := c.dial(t)               // checks, straight to the master
	if err := cl.Mkdir(ctx, "/idem", false); err != nil {
		t.Fatal(err)
	}

	exists := func(p string) bool {
		_, err := direct.Stat(ctx, p)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("stat %s: %v", p, err)
		}
		return err == nil
	}
	// lost runs call through the proxy with its answer swallowed, kills
	// the master once the answer was sent (so after its log sync), restarts
	// it, checks the call's effect survived, and lets the client's retry
	// through: the call must report success.
	lost := func(name string, call func() error, applied func() bool) {
		t.Helper()
		proxy.set(true, false)
		done := make(chan error, 1)
		go func() { done <- call() }()
		if took, ok := eventually(20*time.Second, func() bool { return proxy.droppedBytes() >= answerBytes }); !ok {
			t.Fatalf("%s: no answer from the master within %v", name, took)
		}
		proxy.set(true, true)
		c.master.kill()
		proxy.breakAll()
		c.master.start()
		if !applied() {
			t.Fatalf("%s: the master answered, then lost the call's effect across kill -9", name)
		}
		proxy.set(false, false)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s, retried after the master died before answering: %v (want success: the first attempt succeeded)", name, err)
			}
		case <-time.After(2 * retryWindow):
			t.Fatalf("%s: no answer within %v", name, 2*retryWindow)
		}
	}

	lost("create /idem/f", func() error { return cl.Create(ctx, "/idem/f", client.CreateOptions{}) },
		func() bool { return exists("/idem/f") })
	if err := cl.Create(ctx, "/idem/f", client.CreateOptions{}); !errors.Is(err, client.ErrExists) {
		t.Fatalf("a second create of /idem/f: %v, want ErrExists", err)
	}

	lost("rename /idem/f /idem/g", func() error { return cl.Rename(ctx, "/idem/f", "/idem/g") },
		func() bool { return exists("/idem/g") && !exists("/idem/f") })
	if err := cl.Rename(ctx, "/idem/f", "/idem/g"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a second rename of /idem/f: %v, want ErrNotFound", err)
	}

	lost("mkdir /idem/d", func() error { return cl.Mkdir(ctx, "/idem/d", false) },
		func() bool { return exists("/idem/d") })
	if err := cl.Mkdir(ctx, "/idem/d", false); !errors.Is(err, client.ErrExists) {
		t.Fatalf("a second mkdir of /idem/d: %v, want ErrExists", err)
	}

	lost("delete /idem/g", func() error { return cl.Delete(ctx, "/idem/g", false) },
		func() bool { return !exists("/idem/g") })
	if err := cl.Delete(ctx, "/idem/g", false); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("a second delete of /idem/g: %v, want ErrNotFound", err)
	}

	// A restart that replays the checkpoint (every 3 records) and the log
	// keeps the namespace the calls made.
	c.master.kill()
	c.master.start()
	if !exists("/idem/d") || exists("/idem/f") || exists("/idem/g") {
		t.Fatalf("namespace after the last restart: %v", namespaceSnapshot(t, direct, "/idem"))
	}
}
