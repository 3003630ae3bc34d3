package connlimit

import (
	"fmt"
	"testing"
	"time"
)

// TestLogLimiter: one line per host per interval gets through, the rest
// are counted (per host in the next line that gets through, and in all).
func TestLogLimiter(t *testing.T) {
	l := NewLogLimiter(time.Hour)
	if ok, sup := l.Allow("a"); !ok || sup != 0 {
		t.Fatalf("first line about a: %v %d", ok, sup)
	}
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow("a"); ok {
			t.Fatalf("line %d about a let through within the interval", i)
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("first line about b held back by a's")
	}
	if got := l.Dropped(); got != 1000 {
		t.Fatalf("Dropped = %d, want 1000", got)
	}
	// After the interval the next line gets through and says how many were
	// held back.
	l.hosts["a"].last = time.Now().Add(-2 * time.Hour)
	if ok, sup := l.Allow("a"); !ok || sup != 1000 {
		t.Fatalf("line after the interval: %v, suppressed %d, want true, 1000", ok, sup)
	}
	l.Forget("a")
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("line after Forget held back")
	}
}

// TestLogLimiterBounded: a flood from many hosts does not grow the
// limiter past maxLogHosts once their interval passed.
func TestLogLimiterBounded(t *testing.T) {
	l := NewLogLimiter(time.Millisecond)
	for i := 0; i < 3*maxLogHosts; i++ {
		if i%maxLogHosts == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		l.Allow(fmt.Sprint("h", i))
	}
	l.mu.Lock()
	n := len(l.hosts)
	l.mu.Unlock()
	if n > maxLogHosts+1 {
		t.Fatalf("%d hosts remembered, bound %d", n, maxLogHosts)
	}
}
