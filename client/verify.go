package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/divergence"
)

// verifyBlock is the unit ReplicaContent digests: the store's checksum
// block, so a divergence is located to the block the store would name.
const verifyBlock = divergence.BlockSize

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
// the same version (Block: the first 64 KiB block that differs, -1 when
// only the length does).
type Divergence = divergence.Divergence

// DivergentReplicas compares the contents of one chunk's replicas (all at
// the same version, each verified against its own checksums, in the
// master's order) and returns the ones that differ from the good copy:
// the content most replicas share, a tie going to the group holding
// primary (the lease holder's lineage), else to the replica listed first
// (package dataplane/divergence, which the chunkservers' replica check
// uses too). Lengths and partial tails are compared only when settled (no
// mutation may be in flight).
func DivergentReplicas(rcs []ReplicaContent, primary string, settled bool) []Divergence {
	rs := make([]divergence.Replica, len(rcs))
	for i, rc := range rcs {
		rs[i] = divergence.Replica(rc)
	}
	return divergence.Find(rs, primary, settled)
}

// ReportDivergentReplica tells the master that the replica dv of loc's
// chunk differs from its good copy: the master drops it and copies the
// chunk anew from a good replica (it never drops the last one).
func (c *Client) ReportDivergentReplica(ctx context.Context, loc ChunkLocation, dv Divergence) {
	reason := fmt.Sprintf("replica diverges from the chunk's good copy at version %d (block %d, length %d)", loc.Version, dv.Block, dv.Length)
	// About loc.Version only: ignored if the chunk moved on since it was read.
	_, err := c.master.ReportBadReplica(ctx, &controlpb.ReportBadReplicaRequest{Handle: loc.Handle, Replica: dv.Addr, Reason: reason, Version: loc.Version})
	if err != nil {
		c.log.Warn("report divergent replica failed", "handle", loc.Handle, "replica", dv.Addr, "err", err)
	}
}
