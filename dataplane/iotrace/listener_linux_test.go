//go:build linux

package iotrace

import (
	"errors"
	"net"
	"os"
	"strconv"
	"testing"
)

func TestPIDByAddrFindsListener(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		host := "127.0.0.1"
		if network == "tcp6" {
			host = "::1"
		}
		l, err := net.Listen(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		pid, err := PIDByAddr(l.Addr().String())
		if err != nil || pid != os.Getpid() {
			t.Errorf("%s %s: pid %d, %v; want %d", network, l.Addr(), pid, err, os.Getpid())
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if _, err := PIDByAddr(net.JoinHostPort(host, itoa(port))); !errors.Is(err, ErrNoListener) {
			t.Errorf("%s closed port: %v, want ErrNoListener", network, err)
		}
	}
	for _, bad := range []string{"nocolon", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:x"} {
		if _, err := PIDByAddr(bad); err == nil {
			t.Errorf("PIDByAddr(%q): no error", bad)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseHexAddr(t *testing.T) {
	ip, port, ok := parseHexAddr("0100007F:1F90")
	if !ok || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != 8080 {
		t.Fatalf("got %v %d %v", ip, port, ok)
	}
	ip, port, ok = parseHexAddr("00000000000000000000000001000000:0050")
	if !ok || !ip.Equal(net.IPv6loopback) || port != 80 {
		t.Fatalf("got %v %d %v", ip, port, ok)
	}
	for _, bad := range []string{"", "zz:1", "0100007F", "0100007F:zz", "01:0050"} {
		if _, _, ok := parseHexAddr(bad); ok {
			t.Errorf("parseHexAddr(%q) ok", bad)
		}
	}
}
