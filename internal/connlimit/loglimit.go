package connlimit

import (
	"sync"
	"time"
)

// LogEvery is how often a LogLimiter lets a line about one host through.
const LogEvery = time.Second

// maxLogHosts bounds the hosts a LogLimiter remembers; past it, hosts not
// logged within the interval are forgotten (a flood from many addresses
// cannot grow it without bound).
const maxLogHosts = 4096

// LogLimiter rate-limits log lines about remote hosts: at most one line per
// host per interval gets through, the others are counted. A listener
// refusing connections over the cap and a server closing malformed
// connections use it, so one misbehaving host costs a line a second, not a
// line per connection. It is safe for concurrent use.
type LogLimiter struct {
	every time.Duration

	mu      sync.Mutex
	hosts   map[string]*logHost // guarded by mu
	dropped uint64              // guarded by mu
}

type logHost struct {
	last    time.Time
	dropped uint64 // held back since last
}

// NewLogLimiter lets one line per host through every interval (0 =
// LogEvery).
func NewLogLimiter(every time.Duration) *LogLimiter {
	if every <= 0 {
		every = LogEvery
	}
	return &LogLimiter{every: every, hosts: map[string]*logHost{}}
}

// Allow reports whether a line about host may be logged now. When it may,
// suppressed is the number of lines about host held back since the last
// one (to put in the line); when not, the line is counted as dropped.
func (l *LogLimiter) Allow(host string) (ok bool, suppressed uint64) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[host]
	if h == nil {
		if len(l.hosts) >= maxLogHosts {
			l.pruneLocked(now)
		}
		h = &logHost{}
		l.hosts[host] = h
	} else if now.Sub(h.last) < l.every {
		h.dropped++
		l.dropped++
		return false, 0
	}
	suppressed, h.dropped, h.last = h.dropped, 0, now
	return true, suppressed
}

// Dropped returns how many lines Allow held back in all.
func (l *LogLimiter) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// Forget drops what is remembered about host (its next line gets through).
func (l *LogLimiter) Forget(host string) {
	l.mu.Lock()
	delete(l.hosts, host)
	l.mu.Unlock()
}

func (l *LogLimiter) pruneLocked(now time.Time) {
	for k, h := range l.hosts {
		if now.Sub(h.last) >= l.every {
			delete(l.hosts, k)
		}
	}
}
