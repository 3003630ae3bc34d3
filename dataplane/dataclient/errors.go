package dataclient

import (
	"errors"
	"fmt"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// Sentinel errors. Errors from a chunkserver wrap one of these (match with
// errors.Is) together with the server's message.
var (
	ErrChunkFull    = errors.New("dataclient: chunk full")
	ErrStaleVersion = errors.New("dataclient: stale chunk version")
	ErrNotPrimary   = errors.New("dataclient: not the primary (no lease or lease expired)")
	ErrNoSuchChunk  = errors.New("dataclient: no such chunk")
	ErrTooLarge     = errors.New("dataclient: too large")
	ErrChecksum     = errors.New("dataclient: checksum mismatch")
	ErrOutOfRange   = errors.New("dataclient: offset out of range")
	ErrBusy         = errors.New("dataclient: chunkserver busy")
	ErrNoPushData   = errors.New("dataclient: pushed data not found")
	ErrNoSpace      = errors.New("dataclient: no space")
	ErrUnavailable  = errors.New("dataclient: replica unavailable")
	ErrBadRequest   = errors.New("dataclient: bad request")
	ErrProtocol     = errors.New("dataclient: protocol violation")
	ErrServer       = errors.New("dataclient: chunkserver error")
	ErrClosed       = errors.New("dataclient: client closed")
	// ErrDenied: the chunkserver refused the request's capability (missing,
	// expired, forged, for another chunk or operation); ask the master for
	// a fresh one.
	ErrDenied = errors.New("dataclient: capability refused")
	// ErrStaleChain: the primary's lease names other replicas than the
	// mutation's chain (the caller's locations are out of date, or the
	// master is replacing a lost replica); look the chunk up again.
	ErrStaleChain = errors.New("dataclient: chain does not match the lease's replicas")
	// ErrDataTLSRequired: the chunkserver runs -data-tls and refused a
	// plaintext connection (set Options.TLS).
	ErrDataTLSRequired = errors.New("dataclient: the chunkserver requires TLS on the data channel")
	// ErrNoDataTLS: the chunkserver did not answer the TLS handshake of a
	// data connection (it runs without TLS).
	ErrNoDataTLS = errors.New("dataclient: the chunkserver does not speak TLS on the data channel")
)

// ChecksumError reports a block whose bytes did not match its checksum.
type ChecksumError struct {
	Addr   string // replica that served the block
	Handle uint64
	Block  int64 // block index within the chunk (offset / 64 KiB)
}

// Error names the replica, chunk and block.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("dataclient: chunk %x block %d from %s: checksum mismatch", e.Handle, e.Block, e.Addr)
}

// Is makes errors.Is(err, ErrChecksum) true.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// ReplicaError names the replica of a chain whose failure failed a push or
// mutation. Err wraps one of the sentinels (ErrUnavailable when the replica
// could not be reached).
type ReplicaError struct {
	Addr string
	Err  error
}

// Error names the replica and its failure.
func (e *ReplicaError) Error() string { return fmt.Sprintf("replica %s: %v", e.Addr, e.Err) }

// Unwrap returns the replica's error.
func (e *ReplicaError) Unwrap() error { return e.Err }

// statusErr maps a response status onto its sentinel.
func statusErr(s wire.Status) error {
	switch s {
	case wire.StatusChunkFull:
		return ErrChunkFull
	case wire.StatusStaleVersion:
		return ErrStaleVersion
	case wire.StatusNotPrimary:
		return ErrNotPrimary
	case wire.StatusNoSuchChunk:
		return ErrNoSuchChunk
	case wire.StatusTooLarge:
		return ErrTooLarge
	case wire.StatusChecksum:
		return ErrChecksum
	case wire.StatusOutOfRange:
		return ErrOutOfRange
	case wire.StatusBusy:
		return ErrBusy
	case wire.StatusNoPushData:
		return ErrNoPushData
	case wire.StatusNoSpace:
		return ErrNoSpace
	case wire.StatusUnavailable:
		return ErrUnavailable
	case wire.StatusDenied:
		return ErrDenied
	case wire.StatusStaleChain:
		return ErrStaleChain
	case wire.StatusTLSRequired:
		return ErrDataTLSRequired
	case wire.StatusBadRequest, wire.StatusUnknownOp:
		return ErrBadRequest
	default:
		return ErrServer
	}
}

// responseError builds the error for a non-OK response from addr.
func responseError(addr string, s wire.Status, e *wire.ErrorResponse) error {
	err := fmt.Errorf("%s: %s: %w", addr, e.Message, statusErr(s))
	if e.Replica != "" && e.Replica != addr {
		return &ReplicaError{Addr: e.Replica, Err: fmt.Errorf("%s (reported by %s): %w", e.Message, addr, statusErr(s))}
	}
	return err
}
