package divergence

import (
	"fmt"
	"slices"
)

// BlockSize is the unit a Replica's Blocks digest: the store's checksum
// block, so a divergence is located to the block the store would name.
const BlockSize = 64 << 10

// Replica is what one replica of a chunk holds.
type Replica struct {
	Addr   string
	Length int64
	// Blocks is the xxhash64 of every BlockSize block of the data; the
	// last one covers the partial tail.
	Blocks []uint64
}

// Divergence is a replica whose bytes differ from the chunk's good copy at
// the same version.
type Divergence struct {
	Addr string
	// Block is the first 64 KiB block that differs (-1: only the length).
	Block  int
	Length int64
}

// Find compares the replicas of one chunk, all at the same version and
// listed in the master's order, and returns the ones that differ from the
// good copy (see the package doc). primary is the lease holder ("" when
// none); settled says no mutation may be in flight, so lengths and partial
// tails must agree too: a replica longer or shorter than the good copy
// with equal blocks before that is reported, with Block -1, only then.
func Find(rs []Replica, primary string, settled bool) []Divergence {
	if len(rs) < 2 {
		return nil
	}
	minLen := rs[0].Length
	for _, r := range rs {
		minLen = min(minLen, r.Length)
	}
	full := int(minLen / BlockSize) // blocks every replica holds whole
	key := func(r Replica) string {
		k := fmt.Sprint(r.Blocks[:min(full, len(r.Blocks))])
		if settled {
			k += fmt.Sprint(r.Length, r.Blocks[min(full, len(r.Blocks)):])
		}
		return k
	}
	groups := map[string][]int{}
	var order []string
	for i, r := range rs {
		k := key(r)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	if len(groups) == 1 {
		return nil
	}
	hasPrimary := func(idx []int) bool {
		return primary != "" && slices.ContainsFunc(idx, func(i int) bool { return rs[i].Addr == primary })
	}
	best := order[0]
	for _, k := range order[1:] {
		g, b := groups[k], groups[best]
		if len(g) > len(b) || (len(g) == len(b) && hasPrimary(g) && !hasPrimary(b)) {
			best = k
		}
	}
	good := rs[groups[best][0]]
	var out []Divergence
	for _, k := range order {
		if k == best {
			continue
		}
		for _, i := range groups[k] {
			r := rs[i]
			dv := Divergence{Addr: r.Addr, Block: -1, Length: r.Length}
			for b := 0; b < min(len(r.Blocks), len(good.Blocks)); b++ {
				if r.Blocks[b] != good.Blocks[b] {
					dv.Block = b
					break
				}
			}
			out = append(out, dv)
		}
	}
	return out
}
