package dataclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// MaxRecordBytes caps a record append on the client side (a 64 MiB chunk's
// quarter); the primary enforces its own chunk size / 4.
const MaxRecordBytes = wire.MaxPayload / 4

// Push sends data to chain[0], which buffers it and forwards it down the
// rest of the chain as it arrives; it returns the push id to name the data
// in a mutation once every replica of the chain holds it.
func (c *Client) Push(ctx context.Context, chain []string, data []byte) (wire.PushID, error) {
	if err := checkChain(chain); err != nil {
		return wire.PushID{}, err
	}
	if len(data) > wire.MaxPayload {
		return wire.PushID{}, fmt.Errorf("push %d bytes: %w", len(data), ErrTooLarge)
	}
	id := wire.PushID{Client: c.clientID, Seq: c.seq.Add(1)}
	req := wire.PushRequest{ID: id, DataSum: xxhash.Sum64(data), Downstream: chain[1:]}
	if err := c.roundTrip(ctx, chain[0], wire.OpPush, 0, &req, data, nil); err != nil {
		return id, replicaErr(chain[0], fmt.Errorf("push: %w", err))
	}
	return id, nil
}

// Write pushes data along chain (chain[0] first; each forwards down the
// chain as packets arrive), then asks primary (one of chain) to apply it at
// off on all replicas in the primary's serial order. Returns when all
// replicas applied it (and, with sync, made it durable). Small writes carry
// their data in the write request instead (Options.InlineBytes); writes
// larger than Options.WritePieceBytes go as pipelined write mutations of
// that size (as GFS clients split large writes), the last piece first so
// that a write refused by the primary changes nothing; a later failure may
// leave some pieces written.
func (c *Client) Write(ctx context.Context, chain []string, primary string, h, v uint64, off int64, data []byte, sync bool) error {
	var err error
	if len(data) > c.piece {
		err = c.writePieces(ctx, chain, primary, h, v, off, data, sync)
	} else {
		_, err = c.mutate(ctx, wire.OpWrite, chain, primary, h, v, off, data, sync)
	}
	if err != nil {
		return fmt.Errorf("write chunk %x at %d (+%d): %w", h, off, len(data), err)
	}
	return nil
}

// writePieces writes data as write mutations of up to c.piece bytes (as
// the GFS client splits large writes), pipelined: the next piece is pushed
// along the chain while the primary applies the current one, so the
// replicas' disk writes overlap the network transfer. The last piece goes
// first: a write reaching past the chunk (or refused for its version or
// lease) then fails before any byte changed. Only the final mutation asks
// for sync: an fdatasync covers the pieces applied before it on that
// replica. The first failure ends the write; pieces applied before it stay
// written, as with any failed GFS write.
func (c *Client) writePieces(ctx context.Context, chain []string, primary string, h, v uint64, off int64, data []byte, sync bool) error {
	if err := checkChain(chain); err != nil {
		return err
	}
	lastStart := (len(data) - 1) / c.piece * c.piece
	starts := []int{lastStart}
	for pos := 0; pos < lastStart; pos += c.piece {
		starts = append(starts, pos)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	type pushed struct {
		id  wire.PushID
		err error
	}
	ids := make(chan pushed, 1) // one piece pushed ahead of the one applied
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ids)
		for _, pos := range starts {
			id, err := c.Push(ctx, chain, data[pos:min(pos+c.piece, len(data))])
			select {
			case ids <- pushed{id, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		cancel() // the pusher may be waiting to hand over its next piece
		<-done
	}()
	applied := 0
	for p := range ids {
		if p.err != nil {
			return p.err
		}
		pos := starts[applied]
		end := min(pos+c.piece, len(data))
		final := applied == len(starts)-1
		if _, err := c.mutatePushed(ctx, wire.OpWrite, chain, primary, h, v, off+int64(pos), data[pos:end], sync && final, &p.id); err != nil {
			return err
		}
		applied++
	}
	if applied < len(starts) {
		// The pusher stopped without an error: the context ended.
		return replicaErr(primary, fmt.Errorf("write stopped after %d of %d pieces: %w", applied, len(starts), parent.Err()))
	}
	return nil
}

// Append record-appends data (<= chunk size / 4) at an offset the primary
// picks; returns that offset within the chunk, or ErrChunkFull (the chunk
// was padded on every replica; go to the next chunk).
func (c *Client) Append(ctx context.Context, chain []string, primary string, h, v uint64, data []byte, sync bool) (int64, error) {
	if len(data) > MaxRecordBytes {
		return 0, fmt.Errorf("append %d bytes to chunk %x: %w", len(data), h, ErrTooLarge)
	}
	off, err := c.mutate(ctx, wire.OpAppend, chain, primary, h, v, 0, data, sync)
	if err != nil {
		return 0, fmt.Errorf("append to chunk %x (%d bytes): %w", h, len(data), err)
	}
	return off, nil
}

func (c *Client) mutate(ctx context.Context, op wire.Op, chain []string, primary string, h, v uint64, off int64, data []byte, sync bool) (int64, error) {
	return c.mutatePushed(ctx, op, chain, primary, h, v, off, data, sync, nil)
}

// mutatePushed is mutate with the data already pushed under *pushedID when
// pushedID is not nil.
func (c *Client) mutatePushed(ctx context.Context, op wire.Op, chain []string, primary string, h, v uint64, off int64, data []byte, sync bool, pushedID *wire.PushID) (int64, error) {
	if err := checkChain(chain); err != nil {
		return 0, err
	}
	if off < 0 || len(data) > wire.MaxPayload {
		return 0, fmt.Errorf("%w: offset %d length %d", ErrOutOfRange, off, len(data))
	}
	secondaries, err := secondariesOf(chain, primary)
	if err != nil {
		return 0, err
	}
	req := wire.MutationRequest{Handle: h, Version: v, Offset: off, Length: int64(len(data)), Secondaries: secondaries}
	var flags uint16
	if sync {
		flags |= wire.FlagSync
	}
	var payload []byte
	switch {
	case pushedID != nil:
		req.ID = *pushedID
	case c.inline > 0 && len(data) <= c.inline:
		flags |= wire.FlagInline
		payload = data
		req.DataSum = xxhash.Sum64(data)
	default:
		id, err := c.Push(ctx, chain, data)
		if err != nil {
			return 0, err
		}
		req.ID = id
	}
	var resp wire.MutationResponse
	if err := c.roundTrip(ctx, primary, op, flags, &req, payload, &resp); err != nil {
		return 0, replicaErr(primary, err)
	}
	return resp.Offset, nil
}

// replicaErr makes sure a chain operation's error names a replica: errors
// already naming one pass through, others are attributed to addr.
func replicaErr(addr string, err error) error {
	var re *ReplicaError
	if errors.As(err, &re) {
		return err
	}
	return &ReplicaError{Addr: addr, Err: err}
}

// secondariesOf returns chain without (the first occurrence of) primary.
func secondariesOf(chain []string, primary string) ([]string, error) {
	secondaries := make([]string, 0, len(chain)-1)
	found := false
	for _, a := range chain {
		if a == primary && !found {
			found = true
			continue
		}
		secondaries = append(secondaries, a)
	}
	if !found {
		return nil, fmt.Errorf("%w: primary %s not in chain %v", ErrBadRequest, primary, chain)
	}
	return secondaries, nil
}

func checkChain(chain []string) error {
	if len(chain) == 0 || len(chain) > wire.MaxChain {
		return fmt.Errorf("%w: chain of %d replicas (1..%d)", ErrBadRequest, len(chain), wire.MaxChain)
	}
	for _, a := range chain {
		if a == "" || len(a) > wire.MaxAddr {
			return fmt.Errorf("%w: bad replica address %q", ErrBadRequest, a)
		}
	}
	return nil
}
