// Package dataclient is the client side of the GFS-Go data channel
// (docs/protocol.md): reads with end-to-end checksum verification, chain
// pushes, and write / record-append requests to a chunk's primary.
//
// Invariants:
//
//   - Read never returns a byte whose 64 KiB block failed its xxhash64
//     against the checksum the chunkserver sent from its store: corruption
//     on disk, in the server's memory or on the network surfaces as a
//     *ChecksumError naming the replica and block.
//   - A connection carries one request at a time and goes back to the idle
//     pool only after its response was read completely; any I/O or protocol
//     error closes it, so a pooled connection is always at a frame boundary.
//   - Every request has a deadline: the context's, bounded by IOTimeout.
//   - Goroutines a call starts end before it returns: the verifier that
//     hashes a large read's blocks while the next ones are received, and
//     the pusher that pushes a pieced write's next piece while the current
//     one is applied.
//   - Push ids are (ClientID, sequence): unique per Client, and across
//     clients as long as ClientIDs differ (random by default).
package dataclient
