// Package store is the chunkserver's chunk store: chunks of up to
// Options.ChunkSize bytes kept as files in one directory, written with
// O_DIRECT, with one xxhash64 per 64 KiB block, crash-safe, verified on read
// and scrubbed in the background.
//
// # Files
//
// Chunk h lives in two files named after its handle in hex:
// "%016x.chunk" holds the data at its offsets, "%016x.meta" holds a 64-byte
// header (magic, format version, checksum algorithm, block size, handle,
// version, flags, CRC-32C) followed by one 16-byte entry per block (xxhash64
// of the block, the block's length, and a check over both). See format.go
// for the exact layout. A LOCK file (internal/dirlock: flock, naming the
// holder's PID) keeps a second process out; the kernel drops it at exit.
//
// # Invariants
//
//   - Every acknowledged byte is in the data file. O_DIRECT writes are
//     sector-aligned, so the partial last sector is written padded with
//     zeros; a copy of it is kept in memory (with the running digest of the
//     partial last block) so that appends of any size never read back from
//     disk.
//   - The data file holds zeros past the chunk's length. Holes (WriteAt past
//     the end) and PadTo padding are therefore never written, only hashed.
//     Recovery and the repair after a failed write restore this.
//   - A write goes: new checksums computed (reading old bytes only for a
//     block partly overwritten in the middle of the chunk, after verifying
//     them, so corruption is never laundered into a fresh checksum) ->
//     space reserved -> data written -> entries written -> memory updated.
//     An error at any step leaves the chunk's length, checksums and
//     version as they were and nothing is acknowledged; the only lasting
//     trace of a failed overwrite (an I/O error after some of its bytes
//     reached the disk) is that the blocks it touched may be reported
//     corrupt, never served wrong. Caller memory aligned for O_DIRECT at a
//     sector-aligned offset goes to disk without a copy, and writes of 64
//     KiB or more are hashed on another goroutine while the disk writes.
//   - The chunk length is derived from the entries: each entry carries its
//     block's length, so publishing a block's checksum and the length it
//     covers is one entry write, after the data. A crash between the two
//     leaves either the old entry (the data past the old length is simply
//     not part of the chunk; an overwritten block no longer verifies and is
//     reported) or the new one.
//   - The header is only replaced whole: written aside, fdatasync, rename,
//     fsync of the directory. That is how SetVersion is durable before it
//     returns and never visible before it was attempted.
//   - The header's clean flag says the data and entries were synced and
//     verified (set by Close, by the scrubber, and by Commit for a chunk
//     whose bytes its writer verified as it wrote them: a re-replication
//     copy); the first write after
//     that rewrites the header as dirty before touching data. Open verifies
//     every block of every chunk not marked clean, so after kill -9 or power
//     loss each block either verifies or is reported (Info().Corrupt,
//     Options.OnCorrupt) and never served. Open verifies up to 8 chunks at
//     once.
//   - Writes are not durable until Sync (fdatasync of data and .meta);
//     nothing on the write path calls fsync otherwise. Create writes the
//     new .meta in place without fsync: the chunk becomes durable with its
//     first Sync (which then also fsyncs the directory) or SetVersion. A
//     crash before the header is complete leaves a short .meta beside an
//     empty data file, which Open removes.
//   - Should fsync of the directory fail after a header rename, neither
//     the old nor the new header can be promised after a power loss: the
//     chunk goes offline (reported corrupt), fail-stop.
//   - Each entry has its own check, so a torn or flipped entry makes only
//     its own block unverifiable; a header that does not decode takes the
//     chunk offline, listed at version 0 and corrupt, so the master treats
//     the replica as stale.
//
// # Reads
//
// ReadAt verifies every block it returns (whole blocks are read, aligned
// caller memory is filled in place). Reads of 512 KiB and more go through
// the page cache with the next 4 MiB requested from the kernel before the
// hash and the pages read dropped after, so the disk reads ahead while the
// store hashes and a stream leaves nothing cached. A smaller reader going
// through a chunk sequentially gets the store's own readahead: two windows
// (the read size, 256 KiB to 4 MiB) read and verified in the background; at
// most 16 windows exist store-wide, and a window is used only if no write
// happened since it was read. OpenRange hands out a block-aligned
// Range for zero-copy sending: the data file, the stored checksums of the
// covered blocks and a snapshot of the partial last block, so the receiver
// verifies end to end.
//
// # Space
//
// The data file is reserved with fallocate (FALLOC_FL_KEEP_SIZE) ahead of
// the written end, never a whole chunk up front: as far ahead as the chunk
// is already long, from 64 KiB (one block) up to 4 MiB (reserveStep). A
// chunk of a few hundred bytes thus reserves 64 KiB while written, a
// streaming 64 MiB chunk is allocated in a few large extents (64 KiB,
// 128 KiB, ... 4 MiB, then 4 MiB steps), and ENOSPC surfaces at the
// reservation, before any byte of the write changed (ErrNoSpace, wrapping
// ENOSPC). The reservation is given back (the file truncated to its own
// size, which frees the blocks past its end and changes no byte) when the
// chunk has gone ScrubIdle without writes, when it is padded (record
// append sealing it: the padding stays a hole), and at Open for files an
// earlier process left with blocks past their end. Reserved space is
// allocated space to the file system, so the free space the chunkserver
// reports to the master (statfs) already counts it as used. Holes and
// padding stay sparse. The .meta file is written at full size (16 bytes
// per block of the chunk size) when the chunk is created, so entry updates
// never need space.
//
// # Idle chunks
//
// Files are opened when a chunk is first used. When the scrubber has
// verified an idle chunk (and marked it clean), the chunk gives back its
// descriptors, the reservation past its end and its tail buffers, so a
// store with many chunks holds memory and descriptors only for the active
// ones. With the scrubber disabled (ScrubRate < 0) chunks keep their
// descriptors and tails until Close; their reservations are still given
// back when idle.
//
// # Concurrency
//
// Each chunk has its own RWMutex: writes to one chunk are serialised, reads
// share it, different chunks proceed in parallel. The scrubber is a
// goroutine owned by the Store, stopped by Close, reading at most
// Options.ScrubRate bytes per second from chunks idle for Options.ScrubIdle.
package store
