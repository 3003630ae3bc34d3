package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/dataclient"
)

// verifyBlock is the unit ReplicaContent digests: the store's checksum
// block, so a divergence is located to the block the store would name.
const verifyBlock = 64 << 10

// ReplicaContent is what one replica of a chunk holds, as read in full
// and verified against its own checksums by ReadReplica.
type ReplicaContent struct {
	Addr   string
	Length int64
	// Blocks is the xxhash64 of every verifyBlock (64 KiB) of the data as
	// read; the last one covers the partial tail.
	Blocks []uint64
}

// ReadReplica reads the whole chunk from replica addr, verifying every
// block's checksum as VerifyReplica does, and digests what it read so
// replicas can be compared with each other (DivergentReplicas). A checksum
// failure (errors.Is ErrChecksum) is reported to the master.
func (c *Client) ReadReplica(ctx context.Context, loc ChunkLocation, addr string) (ReplicaContent, error) {
	rc := ReplicaContent{Addr: addr}
	buf := make([]byte, 1<<20)
	d := xxhash.New()
	inBlock := 0
	add := func(p []byte) {
		for len(p) > 0 {
			n := min(len(p), verifyBlock-inBlock)
			_, _ = d.Write(p[:n])
			p, inBlock = p[n:], inBlock+n
			if inBlock == verifyBlock {
				rc.Blocks = append(rc.Blocks, d.Sum64())
				d.Reset()
				inBlock = 0
			}
		}
	}
	finish := func() {
		if inBlock > 0 {
			rc.Blocks = append(rc.Blocks, d.Sum64())
		}
	}
	for {
		n, err := c.data.Read(dataContext(ctx, loc), addr, loc.Handle, loc.Version, rc.Length, buf)
		add(buf[:n])
		rc.Length += int64(n)
		if isChunkEnd(err) {
			finish()
			return rc, nil
		}
		if err != nil {
			if errors.Is(err, dataclient.ErrChecksum) {
				c.reportBadReplica(ctx, loc.Handle, addr, err)
				return rc, fmt.Errorf("verify chunk %x on %s: %w: %w", loc.Handle, addr, ErrChecksum, err)
			}
			return rc, fmt.Errorf("verify chunk %x on %s: %w", loc.Handle, addr, err)
		}
		if n == 0 {
			finish()
			return rc, nil
		}
	}
}

// Divergence is a replica whose bytes differ from the chunk's good copy at
// the same version.
type Divergence struct {
	Addr string
	// Block is the first 64 KiB block that differs (-1: only the length).
	Block  int
	Length int64
}

// DivergentReplicas compares the contents of one chunk's replicas (all at
// the same version, each verified against its own checksums) and returns
// the ones that differ from the good copy. Replicas of a chunk at one
// version must agree on every acknowledged byte (DESIGN: Security), so
// any difference is a divergence. The good copy is the content most
// replicas share; a tie goes to the group holding primary (the lease
// holder's lineage: it ordered every mutation), else to the group of the
// replica listed first by the master. Blocks are compared over the
// shortest replica's length; a replica longer or shorter than the good copy
// with equal blocks before that is reported with Block -1 only when no
// mutation may be in flight (settled).
func DivergentReplicas(rcs []ReplicaContent, primary string, settled bool) []Divergence {
	if len(rcs) < 2 {
		return nil
	}
	minLen := rcs[0].Length
	for _, rc := range rcs {
		minLen = min(minLen, rc.Length)
	}
	full := int(minLen / verifyBlock) // blocks every replica holds whole
	key := func(rc ReplicaContent) string {
		k := fmt.Sprint(rc.Blocks[:min(full, len(rc.Blocks))])
		if settled {
			k += fmt.Sprint(rc.Length, rc.Blocks[min(full, len(rc.Blocks)):])
		}
		return k
	}
	groups := map[string][]int{}
	var order []string
	for i, rc := range rcs {
		k := key(rc)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	if len(groups) == 1 {
		return nil
	}
	best := order[0]
	for _, k := range order[1:] {
		g, b := groups[k], groups[best]
		hasPrimary := func(idx []int) bool {
			return slices.ContainsFunc(idx, func(i int) bool { return rcs[i].Addr == primary })
		}
		if len(g) > len(b) || (len(g) == len(b) && hasPrimary(g) && !hasPrimary(b)) {
			best = k
		}
	}
	good := rcs[groups[best][0]]
	var out []Divergence
	for _, k := range order {
		if k == best {
			continue
		}
		for _, i := range groups[k] {
			rc := rcs[i]
			dv := Divergence{Addr: rc.Addr, Block: -1, Length: rc.Length}
			for b := 0; b < min(len(rc.Blocks), len(good.Blocks)); b++ {
				if rc.Blocks[b] != good.Blocks[b] {
					dv.Block = b
					break
				}
			}
			out = append(out, dv)
		}
	}
	return out
}

// ReportDivergentReplica tells the master that the replica dv of loc's
// chunk differs from its good copy: the master drops it and copies the
// chunk anew from a good replica (it never drops the last one).
func (c *Client) ReportDivergentReplica(ctx context.Context, loc ChunkLocation, dv Divergence) {
	c.reportBadReplica(ctx, loc.Handle, dv.Addr, fmt.Errorf("replica diverges from the chunk's good copy at version %d (block %d, length %d)", loc.Version, dv.Block, dv.Length))
}
