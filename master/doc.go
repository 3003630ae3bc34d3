// Package master is the GFS-Go master: one process holding the namespace,
// the file -> chunk table, chunk versions and leases, persisted by an
// operation log (package oplog), and driving re-replication and garbage
// collection through chunkserver heartbeats. It serves controlpb.Master and
// calls controlpb.Chunkserver (CreateChunk, SetVersion, GrantLease).
//
// Invariants (GFS sections in brackets):
//
//   - Every metadata mutation is applied to memory and appended to the op
//     log under Master.mu (so log order = apply order), and answered only
//     after its record is durable (group commit) [2.6.3]. Replay applies the
//     same records through the same code (state.apply).
//   - Namespace operations lock paths, not directories: read locks on the
//     ancestors, a read or write lock on the leaf, acquired in one global
//     order [4.1]. A writer keeps its leaf lock until its record is durable,
//     so readers of that path never see an unacknowledged change.
//   - Chunk handles come from a counter whose ceiling is durable before any
//     handle below it is used: never reused, never random.
//   - Chunk locations are never persisted; they come from Register and
//     Heartbeat reports [2.6.2]. A replica reporting a version below the
//     master's is stale: excluded at once, deleted when a good copy exists.
//     A higher version means the master died mid-grant: adopted and logged.
//   - Members (state.go, chunk.replicas): the servers confirmed at a
//     chunk's version, alive or not. A lease names all live members and its
//     primary mutates only with all of them (GrantLease.secondaries), so a
//     member holds every mutation acknowledged at the version, and a member
//     coming back at it is listed again without a copy. A member lost
//     during a lease makes the next write lookup bump the version among the
//     rest (same primary), which turns the lost one stale. A bump answered
//     ambiguously by some member is repeated among the others before any
//     lease, so no server outside a lease holds its version; a server
//     reporting the current version without being a member is refused.
//   - Leases [3.1]: before a new lease the version is bumped on the live
//     up-to-date replicas and made durable, then the lease is granted. The
//     master counts a lease from when it receives the GrantLease answer and
//     an extension from when it processes the heartbeat, so its expiry is
//     never earlier than the primary's. A lease to another server is granted
//     only after the previous expiry has passed; re-granting to the same
//     primary is always safe. For LeaseTTL after start no lease on a chunk
//     that existed before the start is granted or extended (the previous
//     incarnation's leases are unknown).
//   - Deletion is lazy [4.4]: the subtree disappears from the namespace at
//     once, its chunks are kept until GCGrace has passed, then forgotten and
//     deleted on the chunkservers through heartbeat replies; any reported
//     chunk no file references is deleted the same way.
//   - Re-replication [4.3]: chunks below target, fewest replicas first,
//     bounded copies in flight per chunkserver; chunks under a lease are not
//     copied (their data may be changing), nor during the first DeadAfter
//     after start (servers still registering). A chunk below target when a
//     lease is about to be granted is copied right after the bump, before
//     the grant, while it cannot change (CopyChunk), and the copy joins the
//     lease: chunks under steady writes get back to target too.
package master
