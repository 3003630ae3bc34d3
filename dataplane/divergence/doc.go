// Package divergence decides which replicas of a chunk diverge: hold other
// bytes than the chunk's good copy at the same version. Both gfs fsck
// -verify (package client, from the bytes it read) and the chunkservers'
// replica check (from the stored block checksums) use it, so the two
// agree on what "the good copy" is.
//
// The rule: replicas of a chunk at one version must agree on every
// acknowledged byte (every member of a lease applied every mutation
// acknowledged at its version), so any difference is a divergence, and it
// lies in bytes that were never acknowledged (a failed write or append
// that some replicas applied). The good copy is the content most replicas
// share; a tie goes to the group holding the primary (the lease holder's
// lineage: it ordered every mutation), else to the group of the replica
// listed first. Dropping the others and copying the good one over them
// therefore never loses an acknowledged byte.
//
// A replica is described by its length and the xxhash64 of each 64 KiB
// block (the store's checksum block; the last one covers the partial
// tail). Blocks are compared over the shortest replica's whole blocks;
// lengths and tails only when no mutation may be in flight (settled).
package divergence
