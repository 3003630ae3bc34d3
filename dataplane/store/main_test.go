package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind (the
// scrubber, readahead, concurrent reads and hashing are all owned by the
// Store and must be gone after Close).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
