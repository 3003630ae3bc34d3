package dataclient

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/capability"
	"github.com/gfs-go/gfs/dataplane/wire"
)

// BlockSize is the checksum block: one xxhash64 per 64 KiB of chunk.
const BlockSize = 64 << 10

// maxReadPiece bounds one read request: its block-aligned range (up to a
// block more on each side) stays under wire.MaxPayload, and a large read
// costs one round trip per 16 MiB.
const maxReadPiece = 16 << 20

// readGroupBytes is how much payload one read system call may take before
// the blocks in it are hashed inline (large enough to amortise the call,
// small enough to hash from cache).
const readGroupBytes = 1 << 20

// asyncGroupBytes is the largest group a verifier goroutine is handed:
// fewer hand-offs; measured best among 256 KiB-8 MiB (BenchmarkReadClient).
const asyncGroupBytes = 4 << 20

// asyncVerifyMin is the smallest read payload verified by a second
// goroutine (a variable so that benchmarks can compare both ways).
var asyncVerifyMin int64 = 2 << 20

// Read reads len(p) bytes of chunk h (at version v; 0 skips the check) from
// off on replica addr, verifying every block's xxhash64 against the
// checksums the server sent. Returns n < len(p) with io.EOF at the chunk's
// end.
//
// A large read is split into requests of up to 16 MiB that are pipelined
// on one connection: the request for the next piece is sent before the
// current piece is received, so the server never idles while the client
// drains and verifies the socket buffers.
func (c *Client) Read(ctx context.Context, addr string, h, v uint64, off int64, p []byte) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read chunk %x at %d: %w: negative offset", h, off, ErrOutOfRange)
	}
	if len(p) == 0 {
		return 0, nil
	}
	tok := capability.FromContext(ctx)
	if len(tok) > wire.MaxCapability {
		return 0, fmt.Errorf("read chunk %x: capability of %d bytes: %w", h, len(tok), ErrBadRequest)
	}
	cn, err := c.get(ctx, addr)
	if err != nil {
		return 0, err
	}
	n, retry, err := c.readOn(ctx, cn, tok, h, v, off, p)
	if retry {
		c.log.Debug("pooled connection went stale; reading again on a new one", "addr", addr, "err", err)
		if cn, err = c.dial(ctx, addr); err != nil {
			return 0, err
		}
		n, _, err = c.readOn(ctx, cn, tok, h, v, off, p)
	}
	return n, err
}

// readOn is one attempt of Read on cn, which it pools again or closes.
// retry says nothing was received and the read may be sent again on a
// fresh connection (retryStale).
func (c *Client) readOn(ctx context.Context, cn *conn, tok []byte, h, v uint64, off int64, p []byte) (n int, retry bool, err error) {
	stop := c.start(ctx, cn)
	defer stop()
	piece := func(i int) []byte { return p[i*maxReadPiece : min((i+1)*maxReadPiece, len(p))] }
	pieces := (len(p) + maxReadPiece - 1) / maxReadPiece
	ids := [2]uint64{}
	if ids[0], err = c.sendRead(cn, tok, h, v, off, len(piece(0))); err != nil {
		cn.nc.Close()
		return 0, retryStale(ctx, cn, err), ioErr(ctx, cn, "read", err)
	}
	for i := 0; i < pieces; i++ {
		if i+1 < pieces {
			if ids[(i+1)%2], err = c.sendRead(cn, tok, h, v, off+int64((i+1)*maxReadPiece), len(piece(i+1))); err != nil {
				cn.nc.Close()
				return n, false, ioErr(ctx, cn, "read", err)
			}
		}
		buf := piece(i)
		m, fatal, err := cn.recvRead(ids[i%2], h, off+int64(i*maxReadPiece), buf)
		n += m
		if fatal {
			cn.nc.Close()
			var ce *ChecksumError
			if ctx.Err() == nil && (errors.As(err, &ce) || errors.Is(err, ErrProtocol)) {
				return n, false, fmt.Errorf("read chunk %x at %d: %w", h, off+int64(n), err)
			}
			return n, i == 0 && retryStale(ctx, cn, err), ioErr(ctx, cn, "read", err)
		}
		if err == nil && m < len(buf) {
			err = io.EOF
		}
		if err != nil {
			// A pipelined request is outstanding: consume its answer so the
			// connection stays at a frame boundary.
			if i+1 < pieces {
				if _, ffatal, _ := cn.recvRead(ids[(i+1)%2], h, 0, nil); ffatal {
					cn.nc.Close()
					return n, false, err
				}
			}
			c.put(cn)
			if err == io.EOF {
				return n, false, io.EOF
			}
			return n, false, fmt.Errorf("read chunk %x at %d: %w", h, off+int64(n), err)
		}
	}
	c.put(cn)
	return n, false, nil
}

// sendRead sends one read request carrying capability tok and returns its id.
func (c *Client) sendRead(cn *conn, tok []byte, h, v uint64, off int64, n int) (uint64, error) {
	id := c.reqID.Add(1)
	hd := wire.Header{Op: wire.OpRead, RequestID: id}
	req := wire.ReadRequest{Handle: h, Version: v, Offset: off, Length: int64(n)}
	cn.buf = wire.AppendRequest(cn.buf[:0], &hd, tok, &req)
	_, err := cn.nc.Write(cn.buf)
	return id, err
}

// recvRead receives the answer to read request id for [off, off+len(p)).
// p == nil discards the answer (its payload is drained unverified). fatal
// says the connection is unusable.
func (cn *conn) recvRead(id, h uint64, off int64, p []byte) (n int, fatal bool, err error) {
	rh, meta, fatal, err := cn.readResponse(wire.OpRead, id)
	if fatal || err != nil {
		return 0, fatal, err
	}
	if p == nil {
		_, err := cn.br.Discard(int(rh.PayloadLen))
		return 0, err != nil, err
	}
	n, err = cn.readPayload(h, off, p, meta, int64(rh.PayloadLen))
	return n, err != nil, err
}

// readPayload checks the read response's metadata against the request,
// then streams the payload block by block into p (and scratch), verifying
// each block. It consumes exactly payloadLen bytes unless it fails.
func (cn *conn) readPayload(h uint64, off int64, p []byte, meta []byte, payloadLen int64) (int, error) {
	rr := &cn.rr
	if err := rr.Decode(meta); err != nil {
		return 0, fmt.Errorf("%w: read response from %s: %w", ErrProtocol, cn.addr, err)
	}
	want := int64(len(p))
	if off >= rr.ChunkLength {
		want = 0
	} else if rest := rr.ChunkLength - off; rest < want {
		want = rest
	}
	if want == 0 {
		if payloadLen != 0 || len(rr.Sums) != 0 {
			return 0, fmt.Errorf("%w: read past the end from %s carries data", ErrProtocol, cn.addr)
		}
		return 0, nil
	}
	start := rr.RangeOffset
	if start%BlockSize != 0 || start > off || start+payloadLen < off+want ||
		int64(len(rr.Sums)) != (payloadLen+BlockSize-1)/BlockSize || start+payloadLen > rr.ChunkLength {
		return 0, fmt.Errorf("%w: read range [%d,+%d) with %d sums from %s does not cover [%d,+%d) of chunk length %d",
			ErrProtocol, start, payloadLen, len(rr.Sums), cn.addr, off, want, rr.ChunkLength)
	}
	if cn.blk == nil {
		cn.blk = make([]byte, BlockSize)
	}
	end := off + want // bytes of [off, end) land in p[0:want)
	nblocks := len(rr.Sums)
	// Runs of whole blocks are verified by a second goroutine while this
	// one receives the next run, so hashing never leaves the socket
	// undrained; small payloads are hashed inline.
	var v *verifier
	group := int64(readGroupBytes)
	if payloadLen >= asyncVerifyMin {
		v = startVerifier(cn.addr, h)
		defer v.stop()
		group = min(max(payloadLen/4, readGroupBytes), asyncGroupBytes)
	}
	var edgeErr *ChecksumError // a failed partial block (the lowest is reported)
	for i := 0; i < nblocks; {
		bs := start + int64(i)*BlockSize
		be := min(bs+BlockSize, start+payloadLen)
		if bs >= off && be <= end {
			// A run of whole blocks inside p: one read of up to group
			// bytes straight into p, then hash each block (here, while
			// it is still in cache, or on the verifier).
			j := i + 1
			for j < nblocks && int64(j-i)*BlockSize < group && min(start+int64(j+1)*BlockSize, start+payloadLen) <= end {
				j++
			}
			ge := min(start+int64(j)*BlockSize, start+payloadLen)
			if _, err := io.ReadFull(cn.br, p[bs-off:ge-off]); err != nil {
				return 0, ioErr0(cn, err)
			}
			g := verifyGroup{data: p[bs-off : ge-off], sums: rr.Sums[i:j], first: bs / BlockSize}
			if v != nil {
				v.jobs <- g
			} else if err := g.verify(cn.addr, h); err != nil {
				return 0, err
			}
			i = j
			continue
		}
		// Block straddles p's edges: pieces before off and after end go
		// to scratch, the rest into p; hash the pieces in order.
		cn.dig.Reset()
		for pos := bs; pos < be; {
			var seg []byte
			switch {
			case pos < off:
				seg = cn.blk[:min(off, be)-pos]
			case pos < end:
				seg = p[pos-off : min(end, be)-off]
			default:
				seg = cn.blk[:be-pos]
			}
			if _, err := io.ReadFull(cn.br, seg); err != nil {
				return 0, ioErr0(cn, err)
			}
			_, _ = cn.dig.Write(seg)
			pos += int64(len(seg))
		}
		if cn.dig.Sum64() != rr.Sums[i] && edgeErr == nil {
			// Keep reading: the connection stays at a frame boundary
			// only if the payload is consumed, and the verifier may
			// report a lower block.
			edgeErr = &ChecksumError{Addr: cn.addr, Handle: h, Block: bs / BlockSize}
		}
		i++
	}
	var err *ChecksumError
	if v != nil {
		err = v.stop()
	}
	if edgeErr != nil && (err == nil || edgeErr.Block < err.Block) {
		err = edgeErr
	}
	if err != nil {
		return 0, err
	}
	return int(want), nil
}

// verifyGroup is a run of whole blocks received into the caller's buffer.
type verifyGroup struct {
	data  []byte
	sums  []uint64
	first int64 // block number of data[0]
}

// verify checks every block of g against its sum.
func (g verifyGroup) verify(addr string, h uint64) *ChecksumError {
	for k, sum := range g.sums {
		blk := g.data[k*BlockSize : min((k+1)*BlockSize, len(g.data))]
		if xxhash.Sum64(blk) != sum {
			return &ChecksumError{Addr: addr, Handle: h, Block: g.first + int64(k)}
		}
	}
	return nil
}

// verifier hashes the groups one read receives, in order, on its own
// goroutine; stop ends it and returns the first failed block.
type verifier struct {
	jobs    chan verifyGroup
	done    chan struct{}
	err     *ChecksumError // set by the goroutine before done closes
	stopped bool
}

func startVerifier(addr string, h uint64) *verifier {
	v := &verifier{jobs: make(chan verifyGroup, 8), done: make(chan struct{})}
	go func() {
		defer close(v.done)
		for g := range v.jobs {
			if v.err == nil {
				v.err = g.verify(addr, h)
			}
		}
	}()
	return v
}

// stop waits for every group sent so far to be verified. Idempotent.
func (v *verifier) stop() *ChecksumError {
	if !v.stopped {
		v.stopped = true
		close(v.jobs)
	}
	<-v.done
	return v.err
}

// ioErr0 wraps an I/O failure inside a read's payload; Read classifies it
// (context, or ErrUnavailable) with ioErr.
func ioErr0(cn *conn, err error) error {
	return fmt.Errorf("read payload: %w", err)
}

// Length returns the replica's current length of chunk h (at version v; 0
// skips the check).
func (c *Client) Length(ctx context.Context, addr string, h, v uint64) (int64, error) {
	var resp wire.LengthResponse
	if err := c.roundTrip(ctx, addr, wire.OpLength, 0, &wire.LengthRequest{Handle: h, Version: v}, nil, &resp); err != nil {
		return 0, fmt.Errorf("length of chunk %x: %w", h, err)
	}
	return resp.Length, nil
}
