//go:build linux

package iotrace

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoListener: no process listens on the address.
var ErrNoListener = errors.New("no process listens there")

// PIDByAddr returns the process listening on the TCP address host:port:
// it finds the listening socket's inode in /proc/net/tcp and tcp6 (an
// exact address or the wildcard on that port), then the process holding
// socket:[inode] among /proc/*/fd. Several processes sharing the socket
// (a forked daemon) are an error naming them.
func PIDByAddr(addr string) (int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return 0, fmt.Errorf("address %q: bad port", addr)
	}
	var want net.IP
	if host != "" {
		if want = net.ParseIP(host); want == nil {
			ips, err := net.LookupIP(host)
			if err != nil || len(ips) == 0 {
				return 0, fmt.Errorf("address %q: cannot resolve host", addr)
			}
			want = ips[0]
		}
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listeningInodes(f, uint16(port), want, inodes); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("tcp %s: %w", addr, ErrNoListener)
	}
	pids, err := socketOwners(inodes)
	if err != nil {
		return 0, err
	}
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("tcp %s: %w (a socket listens but no visible process holds it; run as root)", addr, ErrNoListener)
	case 1:
		return pids[0], nil
	}
	return 0, fmt.Errorf("tcp %s: held by several processes %v; pass -pid", addr, pids)
}

// listeningInodes adds the inodes of sockets in LISTEN state on port (and
// on want or a wildcard address, when want is set) from one /proc/net file.
func listeningInodes(file string, port uint16, want net.IP, into map[string]bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A = TCP_LISTEN
			continue
		}
		ip, p, ok := parseHexAddr(fields[1])
		if !ok || p != port {
			continue
		}
		if want != nil && !ip.IsUnspecified() && !ip.Equal(want) {
			continue
		}
		into[fields[9]] = true
	}
	return sc.Err()
}

// parseHexAddr decodes /proc/net/tcp's "0100007F:1F90": the address as
// 32-bit words in host (little-endian) order, the port in hex.
func parseHexAddr(s string) (net.IP, uint16, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, false
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), uint16(port), true
}

// socketOwners returns the sorted pids holding any of the socket inodes.
func socketOwners(inodes map[string]bool) ([]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue // gone, or not ours to see
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
				pids = append(pids, pid)
				break
			}
		}
	}
	sort.Ints(pids)
	return pids, nil
}
