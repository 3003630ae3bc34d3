//go:build !linux || !amd64

package iotrace

// Tracer is unavailable on this platform: Open always fails.
type Tracer struct{}

// Open returns ErrUnsupported: the BPF object is built for linux/amd64.
func Open(pid int) (*Tracer, error) { return nil, ErrUnsupported }

// PID returns 0.
func (t *Tracer) PID() int { return 0 }

// Snapshot returns ErrUnsupported.
func (t *Tracer) Snapshot() (Snapshot, error) { return Snapshot{}, ErrUnsupported }

// Close does nothing.
func (t *Tracer) Close() error { return nil }
