// Package oplog is the master's operation log: an append-only sequence of
// opaque records made durable with group commit, plus checkpoints.
//
// Files in the log directory:
//
//	log-%016x   a segment: 16-byte header ("GFSLOG01", first sequence number)
//	            followed by frames; it holds records first, first+1, ...
//	ckpt-%016x  a checkpoint of the caller's state after record S (the name):
//	            16-byte header ("GFSCKP01", S), frames numbered 1..n, then a
//	            trailer frame (sequence ^0, payload n). Without a valid trailer
//	            the checkpoint does not exist.
//	*.tmp       a checkpoint being written; ignored and removed by Open.
//
// A frame is [4 length][4 crc32c over seq||payload][8 seq][payload], little
// endian. Invariants:
//
//   - A record is acknowledged (Wait returns nil) only after the fdatasync of
//     the write holding it returned. Many concurrent Appends share one write
//     and one fdatasync (group commit): one flusher goroutine writes whatever
//     accumulated while the previous fdatasync ran.
//   - Sequence numbers are contiguous across segments; replay checks it.
//   - Recovery = newest valid checkpoint + replay of the segments after it.
//     In the last segment, the first frame that is short, fails its checksum
//     or breaks the sequence ends the log: it is a torn tail (never
//     acknowledged, because batches are acknowledged in order), the file is
//     truncated there. The same damage in an earlier (sealed) segment, or a
//     gap between segments, is corruption: Open fails with ErrCorrupt rather
//     than drop acknowledged records.
//   - A checkpoint at S is started by rolling the log: records after S go to
//     log-(S+1). The checkpoint is written aside (*.tmp), fsynced, renamed
//     and the directory fsynced, only after every record <= S is durable.
//     Then checkpoints older than the previous one and the segments only
//     they need are removed, so a damaged newest checkpoint falls back to the
//     previous one and its segments.
package oplog
