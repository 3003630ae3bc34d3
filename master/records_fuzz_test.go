package master

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzApplyRecord feeds arbitrary records to a state holding a small
// namespace: apply never panics, and whatever it accepts survives a
// checkpoint (snapshot, then replay into a fresh state gives the same
// snapshot), request ids included. Seeds: one record of every type.
func FuzzApplyRecord(f *testing.F) {
	id := string(bytes.Repeat([]byte{7}, requestIDLen))
	create := newRec(opCreate).s("/d/f").u(2).bool(false).i(5).b
	for _, rec := range [][]byte{
		newRec(opReserve).u(100).b,
		newRec(opMkdir).s("/e").bool(true).i(1).b,
		create,
		newRec(opDelete).s("/d/g").bool(false).u(9).i(3).b,
		newRec(opRename).s("/d/g").s("/d/h").i(4).b,
		newRec(opAddChunk).s("/d/g").u(0).u(3).u(1).b,
		newRec(opVersion).u(3).u(2).b,
		newRec(opReclaim).u(1).b,
		newRec(opRequest).s(id).i(6).u(callFingerprint(opCreate, "/d/f")).s(string(create)).b,
		newRec(opRequest).s("short").i(6).u(1).s(string(create)).b,
		newRec(ckHeader).u(10).u(2).b,
		newRec(ckDir).s("/x").i(1).b,
		newRec(ckFile).s("/x/f").u(1).i(1).u(0).b,
		newRec(ckTrash).u(5).s("/gone").i(1).u(0).b,
		newRec(ckRequest).s(id).i(6).u(42).b,
	} {
		f.Add(rec)
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		st := newState()
		if len(rec) > 0 && rec[0] >= ckHeader {
			// Checkpoint records start a state (the header first).
			_ = st.apply(rec)
			checkpointRoundTrip(t, st, rec)
			return
		}
		for _, r := range [][]byte{
			newRec(opReserve).u(10).b,
			newRec(opMkdir).s("/d").bool(false).i(1).b,
			newRec(opCreate).s("/d/g").u(1).bool(false).i(1).b,
			newRec(opAddChunk).s("/d/g").u(0).u(3).u(1).b,
		} {
			if err := st.apply(r); err != nil {
				t.Fatalf("setup %v: %v", r, err)
			}
		}
		_ = st.apply(rec)
		checkpointRoundTrip(t, st, rec)
	})
}

// checkpointRoundTrip replays st's checkpoint into a fresh state and
// checks it gives the same checkpoint.
func checkpointRoundTrip(t *testing.T, st *state, rec []byte) {
	t.Helper()
	before := snapshotOf(t, st)
	again := newState()
	for _, r := range before {
		if err := again.apply(r); err != nil {
			t.Fatalf("replaying the checkpoint after %x: %v", rec, err)
		}
	}
	// Same records (directory children come in map order).
	key := func(rs [][]byte) []string {
		out := make([]string, len(rs))
		for i, r := range rs {
			out[i] = string(r)
		}
		slices.Sort(out)
		return out
	}
	if a, b := key(before), key(snapshotOf(t, again)); !slices.Equal(a, b) {
		t.Fatalf("checkpoint after %x does not replay to itself:\n%q\n%q", rec, a, b)
	}
}

// snapshotOf returns st's checkpoint records.
func snapshotOf(t *testing.T, st *state) [][]byte {
	t.Helper()
	var out [][]byte
	if err := st.snapshot(func(r []byte) error { out = append(out, bytes.Clone(r)); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
