// Package connlimit caps the connections a listener holds open per remote
// host, so that one peer (a runaway client, a flood) cannot take every file
// descriptor of a server and lock everybody else out. Connections over the
// cap are closed as soon as they are accepted, with a logged reason.
package connlimit

import (
	"log/slog"
	"net"
	"sync"
)

// DefaultPerHost is the cap when none is given: far above what a
// well-behaved client opens (the data client pools 64 idle connections per
// server), far below a process's descriptor limit.
const DefaultPerHost = 4096

// Listener wraps a net.Listener and caps the open connections per remote
// host (IP address). It is safe for concurrent use.
type Listener struct {
	net.Listener
	perHost int
	log     *slog.Logger

	logs *LogLimiter // refusals logged per host

	mu      sync.Mutex
	open    map[string]int // open connections by host; guarded by mu
	refused uint64         // guarded by mu
}

// Wrap caps lis at perHost open connections per remote host: 0 means
// DefaultPerHost, negative means no cap (lis is returned as is). log gets a
// warning when a host is refused (at most one a second per host); nil
// discards.
func Wrap(lis net.Listener, perHost int, log *slog.Logger) net.Listener {
	if perHost < 0 {
		return lis
	}
	if perHost == 0 {
		perHost = DefaultPerHost
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: lis, perHost: perHost, log: log, logs: NewLogLimiter(LogEvery), open: map[string]int{}}
}

// Accept returns the next connection whose host is under the cap; the
// others are closed here.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(c.RemoteAddr())
		l.mu.Lock()
		if l.open[host] >= l.perHost {
			l.refused++
			l.mu.Unlock()
			c.Close()
			if ok, suppressed := l.logs.Allow(host); ok {
				l.log.Warn("connection refused: too many from one host", "host", host, "limit", l.perHost, "suppressed", suppressed)
			}
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, host: host}, nil
	}
}

// Refused returns how many connections were closed for the cap.
func (l *Listener) Refused() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// SuppressedLogs returns how many refusal warnings were held back by the
// once-a-second-per-host limit.
func (l *Listener) SuppressedLogs() uint64 { return l.logs.Dropped() }

// HostOf returns the host part (IP address) of a remote address, the key
// of the per-host cap and log limit.
func HostOf(a net.Addr) string { return hostOf(a) }

// Open returns how many accepted connections from host are open.
func (l *Listener) Open(host string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[host]
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	gone := false
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
		gone = true
	}
	l.mu.Unlock()
	if gone {
		l.logs.Forget(host)
	}
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// conn gives its host's slot back when closed (once).
type conn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}

// Unwrap returns the accepted connection (for callers that need the
// concrete type, such as *net.TCPConn for sendfile).
func (c *conn) Unwrap() net.Conn { return c.Conn }

// Unwrap returns the connection a Listener accepted under c (c itself if it
// is not one of them), for callers that need the concrete type.
func Unwrap(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return c
		}
		c = u.Unwrap()
	}
}
