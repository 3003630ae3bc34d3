package client

import (
	"slices"
	"testing"
)

// TestReadOrderTriesCorruptLast: a replica the master marks corrupt (kept
// only as the chunk's last live copy) is read only after every other
// replica, whatever the spread would pick first; without marks the order
// is orderReplicas'.
func TestReadOrderTriesCorruptLast(t *testing.T) {
	c := &Client{local: map[string]bool{}}
	loc := ChunkLocation{Replicas: []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}}
	for spread := uint64(0); spread < 6; spread++ {
		if got, want := c.readOrder(loc, spread), c.orderReplicas(loc.Replicas, spread); !slices.Equal(got, want) {
			t.Fatalf("spread %d without marks: %v, want %v", spread, got, want)
		}
	}
	loc.Corrupt = []string{"10.0.0.2:1"}
	for spread := uint64(0); spread < 6; spread++ {
		got := c.readOrder(loc, spread)
		if len(got) != 3 || got[2] != "10.0.0.2:1" {
			t.Fatalf("spread %d: %v, want the corrupt replica last", spread, got)
		}
	}
	only := ChunkLocation{Replicas: []string{"10.0.0.2:1"}, Corrupt: []string{"10.0.0.2:1"}}
	if got := c.readOrder(only, 0); !slices.Equal(got, only.Replicas) {
		t.Fatalf("only a corrupt replica: %v, want it still tried", got)
	}
}
