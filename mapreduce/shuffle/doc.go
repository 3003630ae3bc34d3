// Package shuffle is the MapReduce intermediate data path (paper sections 3.1
// and 4.1-4.3): a map task's output is partitioned, sorted and spilled to the
// worker's local disk in bounded memory (Writer), served to reducers over
// HTTP (NewHandler), fetched with end-to-end checksum verification (Fetch),
// and merged on the reduce side in bounded memory (Merge). It knows nothing
// of jobs, the coordinator or GFS; the worker wires it in.
//
// # Map side
//
// Writer buffers emitted pairs in one byte arena (each pair stored already
// encoded as a segment entry) plus a 16-byte record of (key prefix, arena
// offset, partition) per pair. When arena plus records would pass
// WriterOptions.SortBufferBytes the records are sorted by (partition, key)
// (the pairs themselves never move), the optional combiner runs over each
// key's values, and the result is written as one spill file holding R
// segments, one per partition, with their extents kept in memory. Close
// spills what is left and merges the spills partition by partition (k-way
// heap merge, at most WriterOptions.MergeFactor files at once; more spills
// are first merged in passes, Hadoop's io.sort.factor) into one output file,
// running the combiner again when there were at least 3 spills, as Hadoop
// does (min.num.spills.for.combine). With one spill the spill file simply
// becomes the output.
//
// A map attempt's directory then holds exactly:
//
//	file.out        the R segments, partition 0 first, back to back
//	file.out.index  where each segment is (see Index format)
//
// The index is written last, under a temporary name renamed into place, so a
// directory with an index always has a complete output file: the handler
// serves nothing until the index exists. Nothing is fsynced: map output that
// does not survive a crash of its machine is re-executed anyway [3.3].
//
// # Segment format
//
// A segment is one partition's sorted pairs, the unit a reducer fetches and
// merges. All integers are little-endian.
//
//	segment = magic block* end
//	magic   = "GSG1"                                  4 bytes
//	block   = length:uint32 (>0) checksum:uint64 payload[length]
//	end     = 0:uint32 checksum:uint64 blocks:uint64 records:uint64
//	payload = entry+
//	entry   = uvarint(len(key)) uvarint(len(value)) key value
//
// A block's checksum is xxhash64 of its payload; the end marker's is xxhash64
// of its 16 bytes of counts. Writers close a block once it holds 64 KiB of
// entries; a pair larger than that gets a block of its own, so a block is at
// most MaxRecordBytes plus two varints. Keys are in increasing bytes.Compare
// order within a segment (equal keys adjacent, their values in any order).
//
// Readers check, and report a violation as an error wrapping ErrCorrupt:
// the magic, every block checksum, every length against its bound and
// against the bytes that are really there (a block length is never trusted
// for an allocation: buffers grow as payload actually arrives), the key
// order, and the end marker's block and record counts (so a dropped block
// or a truncated segment is detected). An empty partition is a valid 32-byte
// segment (magic and end marker), never a zero-length file.
//
// # Index format
//
//	index   = "GSI1" reduces:uint32 extent[reduces] checksum:uint64
//	extent  = offset:uint64 length:uint64 checksum:uint64 records:uint64
//
// The final checksum is xxhash64 of everything before it. An extent's
// checksum is xxhash64 of the whole segment's bytes; the handler sends it
// (and the length and record count) in response headers and Fetch checks it
// besides the block checksums, so a server bug that sends the wrong bytes is
// caught too. Extents are contiguous from offset 0, which ReadIndex checks.
//
// # Serving and fetching
//
// GET /mr/shuffle?job=J&map=M&attempt=A&part=P answers a segment's bytes
// with io.CopyN from the output *os.File, so on plain TCP the kernel sends
// them (sendfile). Fetch streams the body to a local file while checking
// every block as it passes; on any error it removes the partial file. A
// corrupted or truncated segment is ErrCorrupt, a map output the server does
// not have (worker restarted, attempt unknown) ErrNotFound: either way the
// reducer reports a fetch failure and the map runs again [3.3].
//
// # Reduce side
//
// Merge reads up to MergeOptions.MergeFactor runs at once through a heap,
// each with one read buffer and one block in memory; more runs are first
// merged in passes through TmpDir, smallest first, sized as Hadoop's Merger
// does so that the last pass merges exactly MergeFactor runs.
//
// Nothing here starts goroutines; Writer is used by one goroutine (the map
// task's), Merge runs in its caller's, the handler in net/http's.
package shuffle
