// Package client is the Go client library of GFS-Go.
//
// A Client talks to the master over the control channel (gRPC) for metadata
// and chunk locations, and to chunkservers over the data channel for bytes.
// It is safe for concurrent use.
//
// Record append is at-least-once (GFS 3.3): a record whose append is retried
// may be stored more than once, and a failed append may leave a torn fragment
// on some replicas. RecordAppend therefore frames every record with a magic,
// its length, a checksum and a unique id (see docs/client.md), and
// RecordReader returns each acknowledged record exactly once, in file order,
// skipping padding, torn fragments and duplicates.
package client
