package client

import (
	"slices"
	"testing"
)

func TestDivergentReplicas(t *testing.T) {
	rc := func(addr string, length int64, blocks ...uint64) ReplicaContent {
		return ReplicaContent{Addr: addr, Length: length, Blocks: blocks}
	}
	const b = verifyBlock
	for _, tc := range []struct {
		name    string
		rcs     []ReplicaContent
		primary string
		settled bool
		want    []string
	}{
		{"agree", []ReplicaContent{rc("a", 2*b, 1, 2), rc("b", 2*b, 1, 2), rc("c", 2*b, 1, 2)}, "", true, nil},
		{"one differs", []ReplicaContent{rc("a", 2*b, 1, 2), rc("b", 2*b, 1, 9), rc("c", 2*b, 1, 2)}, "", true, []string{"b"}},
		{"tie goes to the primary", []ReplicaContent{rc("a", b, 1), rc("b", b, 2)}, "b", true, []string{"a"}},
		{"tie without primary: first listed", []ReplicaContent{rc("a", b, 1), rc("b", b, 2)}, "", true, []string{"b"}},
		{"longer tail while unsettled", []ReplicaContent{rc("a", b+10, 1, 5), rc("b", b, 1)}, "a", false, nil},
		{"longer tail when settled", []ReplicaContent{rc("a", b+10, 1, 5), rc("b", b+10, 1, 5), rc("c", b, 1)}, "", true, []string{"c"}},
		{"single replica", []ReplicaContent{rc("a", b, 1)}, "", true, nil},
	} {
		var got []string
		for _, d := range DivergentReplicas(tc.rcs, tc.primary, tc.settled) {
			got = append(got, d.Addr)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: divergent %v, want %v", tc.name, got, tc.want)
		}
	}
}
