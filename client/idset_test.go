package client

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestIDSetAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := newIDSet()
	model := map[RecordID]bool{}
	for i := 0; i < 20000; i++ {
		id := RecordID{Writer: rng.Uint64N(3), Sequence: rng.Uint64N(500)}
		if got, want := s.add(id), !model[id]; got != want {
			t.Fatalf("add(%v) = %v, want %v", id, got, want)
		}
		model[id] = true
	}
	// All 3 x 500 ids seen: one range per writer.
	if len(model) == 1500 && s.ranges() != 3 {
		t.Fatalf("%d ranges for 3 complete writers", s.ranges())
	}
}

func TestIDSetInOrderIsCompact(t *testing.T) {
	s := newIDSet()
	// Pairs swapped, as concurrent appenders of one client produce them;
	// every 1000th pair missing, as failed appends leave gaps.
	for q := uint64(1); q <= 100000; q += 2 {
		if q%1000 == 1 && q > 1 {
			continue
		}
		for _, x := range []uint64{q + 1, q} {
			if !s.add(RecordID{7, x}) {
				t.Fatalf("seq %d not new", x)
			}
			if s.add(RecordID{7, x}) {
				t.Fatalf("duplicate seq %d new", x)
			}
		}
	}
	if s.ranges() != 100 {
		t.Fatalf("%d ranges, want 100 (one per gap)", s.ranges())
	}
	if !s.add(RecordID{7, 0}) || !s.add(RecordID{7, ^uint64(0)}) || s.add(RecordID{7, ^uint64(0)}) {
		t.Fatal("extremes")
	}
}

func FuzzIDSet(f *testing.F) {
	f.Add([]byte{1, 2, 3, 1, 2, 3})
	f.Add([]byte{0, 255, 0, 255, 128})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newIDSet()
		model := map[RecordID]bool{}
		for ; len(data) >= 3; data = data[3:] {
			id := RecordID{Writer: uint64(data[0] % 2), Sequence: uint64(binary.LittleEndian.Uint16(data[1:3]))}
			if got, want := s.add(id), !model[id]; got != want {
				t.Fatalf("add(%v) = %v, want %v", id, got, want)
			}
			model[id] = true
		}
	})
}
