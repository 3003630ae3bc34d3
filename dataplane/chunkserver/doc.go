// Package chunkserver is the GFS-Go chunkserver: one TCP listener that
// serves the data channel (package wire, docs/protocol.md) and, on the same
// port, the control-channel Chunkserver gRPC service the master calls
// (connections opening with the HTTP/2 client preface go to gRPC). It keeps
// chunks in a dataplane/store, registers with the master and heartbeats.
//
// Invariants:
//
//   - Bad input on a connection (bad header, malformed metadata, unknown
//     chunk, stale version, missing lease) is answered with an error status
//     or ends that connection with a logged reason; it never changes the
//     store and never affects other connections.
//   - A primary accepts a mutation only while it holds a lease for the
//     chunk at the request's version, counted from when it received
//     GrantLease (or sent the heartbeat that extended it) minus LeaseMargin,
//     by its own monotonic clock (GFS 3.1), and only when its chain names
//     exactly the other replicas the lease was granted with: a round is
//     answered only once all of them applied it, so every replica at the
//     chunk's current version holds every mutation acknowledged at that
//     version (the master bumps the version to drop one). After a round failed on a
//     replica it stops asking for extensions, so the next lease comes with
//     a new version and the replica that missed data shows up as stale.
//   - Mutations of one chunk are applied in the primary's serial order on
//     every replica: the primary runs one round at a time per chunk
//     (batching whatever queued meanwhile: group commit), applies it
//     locally and on every secondary, and only then answers. A secondary
//     applies only rounds for its current version, from the one primary it
//     accepted at that version, with increasing serials.
//   - Pushed data is held in a bounded buffer keyed by (client id,
//     sequence) until a mutation consumes it or PushTimeout evicts it; the
//     sum of buffered bytes never exceeds PushBufferBytes.
//   - A replica only reports (in heartbeats and Length) what its store
//     holds; a failed round leaves replicas possibly different inside the
//     failed region (GFS semantics) but never claiming bytes they lack.
//   - A re-replication copy is created at version 0 and gets the
//     master's version only once complete and synced: a partial copy never
//     claims the version.
//   - The replica check (Options.ReplicaCheckInterval, replicacheck.go)
//     compares only chunks under no lease, at the master's version, and
//     only on the lowest-address live replica; it reports a replica only
//     when two comparisons an interval apart find it divergent at the same
//     version (package divergence decides which replica is the good copy).
//     It reads no chunk data, only the store's checksums (BlockChecksums:
//     master and chunkserver certificates under TLS, never clients').
//   - Every goroutine is started by Serve or by a request handler and
//     stopped and waited for by Close.
package chunkserver
