package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestAppendReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, recs, err := Open(path)
	if err != nil || len(recs) != 0 {
		t.Fatalf("Open empty: %v %d", err, len(recs))
	}
	var want [][]byte
	for i := range 50 {
		p := bytes.Repeat([]byte{byte(i)}, i*7)
		want = append(want, p)
		if err := j.Append(p); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	j, recs, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if len(recs) != len(want) {
		t.Fatalf("reopened %d records, want %d", len(recs), len(want))
	}
	for i := range want {
		if !bytes.Equal(recs[i], want[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
}

// TestTornTail: every prefix of a journal whose last frame is cut opens
// with the whole frames before it, and appending after it works.
func TestTornTail(t *testing.T) {
	var full []byte
	for i := range 3 {
		full, _ = Encode(full, []byte(fmt.Sprintf("record %d", i)))
	}
	last, _ := Encode(nil, []byte("record 2"))
	start := len(full) - len(last)
	for cut := start; cut < len(full); cut++ {
		path := filepath.Join(t.TempDir(), "journal")
		os.WriteFile(path, full[:cut], 0o644)
		j, recs, err := Open(path)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if len(recs) != 2 {
			t.Fatalf("cut at %d: %d records, want 2", cut, len(recs))
		}
		if err := j.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		j.Close()
		_, recs, err = Open(path)
		if err != nil || len(recs) != 3 || string(recs[2]) != "after" {
			t.Fatalf("cut at %d: after append: %v %q", cut, err, recs)
		}
	}
}

// TestDamageIsRefused: a flipped byte in a frame that is not the last one
// is damage, not a torn tail.
func TestDamageIsRefused(t *testing.T) {
	var full []byte
	for i := range 3 {
		full, _ = Encode(full, []byte(fmt.Sprintf("record %d", i)))
	}
	for _, off := range []int{0, 5, 9, 14, 25} {
		bad := bytes.Clone(full)
		bad[off] ^= 0x40
		if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("flip at %d: %v, want ErrCorrupt", off, err)
		}
	}
	if _, err := Encode(nil, make([]byte, MaxRecordBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized record: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Encode(nil, []byte(`{"type":"job"}`))
	good, _ = Encode(good, []byte(`{"type":"commit"}`))
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte("MRJ1\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, good, err := Decode(data)
		if err != nil {
			return
		}
		if good > len(data) {
			t.Fatalf("good %d > len %d", good, len(data))
		}
		// Re-encoding the records gives back the good prefix.
		var again []byte
		for _, r := range recs {
			again, _ = Encode(again, r)
		}
		if !bytes.Equal(again, data[:good]) {
			t.Fatalf("re-encoded records differ from the good prefix")
		}
	})
}
