package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// Scenario 2: kill -9 two of the three replicas of a chunk in the middle of
// a multi-chunk write. The write either succeeds and reads back, or fails
// with an error; afterwards every chunk is re-replicated to full strength
// on the survivors.
func TestKillTwoReplicasDuringMultiChunkWrite(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 5, replication: 3})
	cl := c.dial(t)
	ctx := context.Background()
	const path = "/big/file"
	if err := cl.Create(ctx, path, client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	f, err := cl.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Written in 256 KiB pieces, one after another, so the write is still
	// going when the replicas die.
	const size = 12*chunkSize + 12345
	data := pattern(2, size)
	const piece = 256 << 10
	written := make(chan int64, 1)
	writeErr := make(chan error, 1)
	go func() {
		var off int64
		defer func() { written <- off }()
		for off < size {
			n := min(piece, size-off)
			if _, err := f.WriteAtContext(ctx, data[off:off+n], off); err != nil {
				writeErr <- err
				return
			}
			off += n
		}
		writeErr <- nil
	}()

	// Wait for the write to reach its third chunk, then kill the primary
	// and one secondary of the chunk being written.
	var loc client.ChunkLocation
	if _, ok := eventually(retryWindow, func() bool {
		locs, err := cl.Chunks(ctx, path)
		if err != nil || len(locs) < 3 {
			return false
		}
		loc = locs[len(locs)-1]
		return loc.Primary != "" && len(loc.Replicas) == 3
	}); !ok {
		t.Fatal("the write did not reach a third chunk")
	}
	victims := []string{loc.Primary}
	for _, r := range loc.Replicas {
		if r != loc.Primary && len(victims) < 2 {
			victims = append(victims, r)
		}
	}
	t.Logf("kill -9 %v (primary and a secondary of chunk %d, handle %x v%d)", victims, loc.Index, loc.Handle, loc.Version)
	start := time.Now()
	for _, v := range victims {
		c.cs[c.csIndex(v)].kill()
	}
	err = <-writeErr
	off := <-written
	if err != nil {
		// Allowed: a clear error. The prefix before it must still read back.
		if !strings.Contains(err.Error(), path) {
			t.Errorf("write error does not name the file: %v", err)
		}
		t.Logf("write failed at %d after %v: %v", off, time.Since(start).Round(time.Millisecond), err)
	} else {
		t.Logf("write of %d bytes succeeded %v after the kills", size, time.Since(start).Round(time.Millisecond))
	}
	checkFile(t, cl, path, data[:off])
	took := waitReplication(t, cl, []string{path}, 3, victims, 60*time.Second)
	t.Logf("every chunk back to 3 live replicas on the survivors %v after the write ended (bound 60s)", took.Round(time.Millisecond))
	checkFile(t, cl, path, data[:off])
}
