package wire

import "fmt"

// Status is the result code carried by a response header. Numbers are part
// of the protocol: never renumber, only add.
type Status uint16

// Status codes (docs/protocol.md lists when each is sent).
const (
	StatusOK           Status = 0
	StatusBadRequest   Status = 1  // malformed metadata, bad offsets or lengths
	StatusUnknownOp    Status = 2  // opcode this server does not implement
	StatusNoSuchChunk  Status = 3  // the replica does not hold the chunk
	StatusStaleVersion Status = 4  // version mismatch between request and replica
	StatusNotPrimary   Status = 5  // no valid lease here / mutation not from the current primary
	StatusChunkFull    Status = 6  // record append did not fit: chunk padded, use the next chunk
	StatusTooLarge     Status = 7  // record or request over its cap
	StatusOutOfRange   Status = 8  // offset or length beyond the chunk
	StatusBusy         Status = 9  // push buffer full: retry later
	StatusNoPushData   Status = 10 // the pushed data named by a mutation is not buffered here
	StatusChecksum     Status = 11 // stored or transferred data failed its checksum
	StatusNoSpace      Status = 12 // disk full
	StatusUnavailable  Status = 13 // a downstream replica could not be reached
	StatusInternal     Status = 14 // anything else (the message says what)
	StatusDenied       Status = 15 // capability missing, forged, expired or not for this chunk/operation
	StatusStaleChain   Status = 16 // the mutation's secondaries are not the replicas the primary's lease names
	StatusTLSRequired  Status = 17 // plaintext request to a chunkserver that requires TLS on the data channel (-data-tls)
	maxStatus                 = StatusTLSRequired
)

var statusNames = [...]string{
	"ok", "bad request", "unknown opcode", "no such chunk", "stale version",
	"not primary", "chunk full", "too large", "out of range", "busy",
	"no pushed data", "checksum mismatch", "no space", "replica unavailable", "internal error",
	"capability refused", "stale chain", "data channel requires TLS",
}

// String returns a short description of s.
func (s Status) String() string {
	if s <= maxStatus {
		return statusNames[s]
	}
	return fmt.Sprintf("status %d", uint16(s))
}
