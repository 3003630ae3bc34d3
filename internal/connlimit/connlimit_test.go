package connlimit

import (
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve accepts on l until it fails, echoing nothing: each accepted
// connection is held open until the peer closes it.
func serve(t *testing.T, l net.Listener) (done chan struct{}) {
	done = make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return done
}

// alive reports whether c is still open on the server's side: a read
// either times out (open) or ends (closed by the server).
func alive(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestCapPerHost: connections from one host over the cap are closed at
// once; closing one frees its slot; the counts go back to zero.
func TestCapPerHost(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(raw, 3, nil).(*Listener)
	done := serve(t, l)
	defer func() { l.Close(); <-done }()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		held = append(held, dial())
	}
	for _, c := range held {
		if !alive(c) {
			t.Fatal("a connection under the cap was closed")
		}
	}
	over := dial()
	if alive(over) {
		t.Fatal("a fourth connection from the same host stayed open")
	}
	over.Close()
	if l.Refused() != 1 {
		t.Fatalf("refused %d, want 1", l.Refused())
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open("127.0.0.1") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("open count %d after a close, want 2", l.Open("127.0.0.1"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	again := dial()
	if !alive(again) {
		t.Fatal("a connection was refused after a slot was freed")
	}
	again.Close()
	for _, c := range held[1:] {
		c.Close()
	}
	for l.Open("127.0.0.1") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("open count %d after every close", l.Open("127.0.0.1"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNoCap: a negative cap leaves the listener as it is.
func TestNoCap(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if Wrap(raw, -1, nil) != raw {
		t.Fatal("negative cap wrapped the listener")
	}
	if l := Wrap(raw, 0, nil).(*Listener); l.perHost != DefaultPerHost {
		t.Fatalf("zero cap = %d, want %d", l.perHost, DefaultPerHost)
	}
}
