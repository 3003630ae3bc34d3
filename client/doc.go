// Package client is the Go client library of GFS-Go.
//
// A Client talks to the master over the control channel (gRPC) for metadata
// and chunk locations, and to chunkservers over the data channel
// (dataplane/dataclient) for bytes. It is safe for concurrent use; a File is
// only a path plus the client's caches and needs no Close.
//
// # Invariants
//
//   - Every byte a read returns was verified end to end against the block
//     checksums the chunkserver stored when the data was written. A replica
//     failing verification is skipped and reported to the master; a read
//     fails (ErrNoLiveReplica, wrapping ErrChecksum when that was the cause)
//     rather than return unverified bytes.
//   - Cached chunk locations are hints: any error on a chunk drops its entry,
//     reads trust an entry for Options.LocationTTL, writes only while the
//     master's lease of the cached primary has more than a second left, and
//     Open purges the file's entries (GFS 2.7.1).
//   - A mutation is acknowledged only when the primary answered that every
//     replica in the chain applied it. Failures (lease changes, dead
//     replicas, timeouts) are retried with the same data until
//     Options.RetryTimeout; the region is undefined after a failure and
//     defined again after a successful retry (GFS 2.7, 3.1).
//   - Record append is at-least-once (GFS 3.3): a record whose append is
//     retried may be stored more than once, and a failed attempt may leave a
//     torn fragment on some replicas. RecordAppend frames every record with a
//     magic, its length, a checksum and a unique id (docs/client.md), and
//     RecordReader returns each acknowledged record exactly once, in file
//     order, skipping padding, torn fragments and duplicates.
//   - A record never crosses a chunk boundary: it is at most a quarter chunk
//     and the primary pads a chunk it does not fit in.
package client
