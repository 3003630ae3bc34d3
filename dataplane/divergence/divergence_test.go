package divergence

import (
	"slices"
	"testing"
)

func TestFind(t *testing.T) {
	r := func(addr string, length int64, blocks ...uint64) Replica {
		return Replica{Addr: addr, Length: length, Blocks: blocks}
	}
	const b = BlockSize
	for _, tc := range []struct {
		name      string
		rs        []Replica
		primary   string
		settled   bool
		want      []string
		wantBlock []int
	}{
		{"agree", []Replica{r("a", 2*b, 1, 2), r("b", 2*b, 1, 2), r("c", 2*b, 1, 2)}, "", true, nil, nil},
		{"one differs", []Replica{r("a", 2*b, 1, 2), r("b", 2*b, 1, 9), r("c", 2*b, 1, 2)}, "", true, []string{"b"}, []int{1}},
		{"majority beats the primary", []Replica{r("a", b, 1), r("b", b, 2), r("c", b, 2)}, "a", true, []string{"a"}, []int{0}},
		{"tie goes to the primary", []Replica{r("a", b, 1), r("b", b, 2)}, "b", true, []string{"a"}, []int{0}},
		{"tie without primary: first listed", []Replica{r("a", b, 1), r("b", b, 2)}, "", true, []string{"b"}, []int{0}},
		{"all differ: first listed", []Replica{r("a", b, 1), r("b", b, 2), r("c", b, 3)}, "", true, []string{"b", "c"}, []int{0, 0}},
		{"longer tail while unsettled", []Replica{r("a", b+10, 1, 5), r("b", b, 1)}, "a", false, nil, nil},
		{"differing tail while unsettled", []Replica{r("a", b+10, 1, 5), r("b", b+10, 1, 6)}, "a", false, nil, nil},
		{"longer tail when settled", []Replica{r("a", b+10, 1, 5), r("b", b+10, 1, 5), r("c", b, 1)}, "", true, []string{"c"}, []int{-1}},
		{"single replica", []Replica{r("a", b, 1)}, "", true, nil, nil},
		{"empty replicas agree", []Replica{r("a", 0), r("b", 0)}, "", true, nil, nil},
	} {
		var got []string
		var blocks []int
		for _, d := range Find(tc.rs, tc.primary, tc.settled) {
			got = append(got, d.Addr)
			blocks = append(blocks, d.Block)
		}
		if !slices.Equal(got, tc.want) || !slices.Equal(blocks, tc.wantBlock) {
			t.Errorf("%s: divergent %v at blocks %v, want %v at %v", tc.name, got, blocks, tc.want, tc.wantBlock)
		}
	}
}

// FuzzFind: replicas as other chunkservers describe them are untrusted
// (any lengths, any number of sums): Find never panics, reports only
// listed replicas, each once, and never all of them.
func FuzzFind(f *testing.F) {
	f.Add([]byte{3, 1, 2, 3, 1, 2, 3, 9, 9, 9}, uint8(0), true)
	f.Add([]byte{2, 0, 5, 5}, uint8(1), false)
	f.Add([]byte{}, uint8(0), true)
	f.Fuzz(func(t *testing.T, b []byte, primary uint8, settled bool) {
		if len(b) == 0 {
			return
		}
		n := int(b[0]%5) + 1
		b = b[1:]
		rs := make([]Replica, n)
		for i := range rs {
			rs[i].Addr = string(rune('a' + i))
			if len(b) > 0 {
				rs[i].Length = int64(b[0]) * BlockSize / 3
				k := int(b[0] % 7)
				b = b[1:]
				for j := 0; j < k && len(b) > 0; j++ {
					rs[i].Blocks = append(rs[i].Blocks, uint64(b[0]%3))
					b = b[1:]
				}
			}
		}
		out := Find(rs, string(rune('a'+int(primary)%n)), settled)
		if len(out) >= n && n > 0 {
			t.Fatalf("every replica divergent: %v of %v", out, rs)
		}
		seen := map[string]bool{}
		for _, d := range out {
			if seen[d.Addr] || d.Addr == "" || d.Addr[0] < 'a' || int(d.Addr[0]-'a') >= n {
				t.Fatalf("bad report %v of %v", out, rs)
			}
			seen[d.Addr] = true
		}
	})
}
