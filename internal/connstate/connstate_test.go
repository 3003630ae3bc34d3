package connstate

import (
	"net"
	"runtime"
	"testing"
	"time"
)

func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	client, err = net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// eventually polls cond (a FIN travels through the loopback stack
// asynchronously) for up to 10 s.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

func TestPeerClosed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the check is implemented on Linux only")
	}
	c, s := pair(t)
	if PeerClosed(c) {
		t.Fatal("open idle connection reported closed")
	}
	s.Close()
	if !eventually(func() bool { return PeerClosed(c) }) {
		t.Fatal("connection closed by the peer not reported within 10 s")
	}

	c2, s2 := pair(t)
	if _, err := s2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return PeerClosed(c2) }) {
		t.Fatal("connection with unasked-for bytes not reported")
	}
	// Nothing was consumed: the byte is still there.
	b := make([]byte, 1)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c2.Read(b); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("read after the check: %d %q %v", n, b[:n], err)
	}
}
