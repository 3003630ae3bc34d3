package chunkserver

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// dataTLSProto is the ALPN protocol of encrypted data connections: a
// client that reaches the data port with another protocol in mind fails
// the handshake instead of being misread.
const dataTLSProto = "gfs-data"

// kernelTLS says whether this kernel offers TLS offload (the "tls" upper
// layer protocol) and why it is not used: Go's crypto/tls keeps its
// traffic keys to itself, so encrypted data connections always copy
// through user space (no sendfile). Reported once at start.
func kernelTLS() (available bool, detail string) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_available_ulp")
	if err != nil {
		return false, "kernel TLS unknown (" + err.Error() + ")"
	}
	ulps := strings.Fields(string(b))
	for _, u := range ulps {
		if u == "tls" {
			return true, "kernel TLS (tls ULP) available but not used: Go's crypto/tls does not hand its keys to the kernel"
		}
	}
	return false, "kernel TLS not available (tcp_available_ulp: " + strings.Join(ulps, " ") + ")"
}

// logDataTLS says at start what the data channel's encryption costs here.
func (s *Server) logDataTLS() {
	_, detail := kernelTLS()
	if s.opts.DataTLS {
		s.log.Warn("data channel TLS: plaintext data connections are refused; encrypted ones copy through user space "+
			"with crypto/tls, sendfile is disabled on them", "ktls", detail)
		return
	}
	s.log.Info("data channel plaintext (encrypted connections accepted from clients that ask: -data-tls)", "ktls", detail)
}

// serveDataTLS serves a data connection that opened with wire.TLSMagic:
// TLS handshake (client certificate of the cluster's CA required), then
// the data protocol inside the TLS stream.
func (s *Server) serveDataTLS(nc net.Conn) {
	if s.dataTLS == nil {
		s.logRefusal("refusing an encrypted data connection: this chunkserver runs without TLS (-insecure)", nc)
		return
	}
	_ = nc.SetDeadline(time.Now().Add(s.opts.IOTimeout))
	tc := tls.Server(nc, s.dataTLS)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		if s.ctx.Err() == nil {
			s.logRefusal("data-channel TLS handshake failed: "+err.Error(), nc)
		}
		return
	}
	var first [4]byte
	if _, err := io.ReadFull(tc, first[:]); err != nil {
		return
	}
	newDataConn(s, tc).serve(first)
}

// refusalLogEvery bounds refusal logs: a peer that keeps connecting with
// the wrong settings is reported, not allowed to flood the log.
const refusalLogEvery = time.Second

// logRefusal logs why a data connection is refused, at most once per
// refusalLogEvery (with the count of those not logged).
func (s *Server) logRefusal(msg string, nc net.Conn) {
	now := time.Now().UnixNano()
	last := s.lastRefusalLog.Load()
	if now-last < int64(refusalLogEvery) || !s.lastRefusalLog.CompareAndSwap(last, now) {
		s.refusalsNotLogged.Add(1)
		return
	}
	s.log.Warn(msg, "remote", nc.RemoteAddr().String(), "not_logged_since_last", s.refusalsNotLogged.Swap(0))
}

// refusalCounters are the Server fields logRefusal uses.
type refusalCounters struct {
	lastRefusalLog    atomic.Int64
	refusalsNotLogged atomic.Int64
}
