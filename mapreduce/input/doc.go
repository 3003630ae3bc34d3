// Package input turns one split of an input file (a byte range, paper
// section 3.1: "the input data is partitioned into a set of M splits") into
// the records a map task reads. It knows two formats, each with a rule that
// makes the records of a file independent of how the file is cut into splits.
//
// # Text
//
// Text returns lines. A line is owned by the split its first byte lies in:
// the split [Offset, Offset+Length) returns exactly the lines whose first
// byte is in that range, reading past its end to finish the last one, and a
// split not at offset 0 starts reading one byte early and skips through the
// first "\n" (the tail of a line owned by an earlier split). This is
// Hadoop's LineRecordReader rule; the one-byte step back means a line that
// starts exactly on a boundary belongs to the split that starts there. So
// for any layout of splits that covers [0, size) without overlap (zero-length
// splits included), every line of the file is returned by exactly one split,
// and concatenating the splits' lines in offset order gives the file's lines.
// A line is returned without its "\n" and without one trailing "\r"; the
// bytes after the last "\n" are a final line when not empty.
//
// Lines are bounded by MaxLineBytes, so a file without newlines fails with
// ErrLineTooLong instead of exhausting memory.
//
// # Records
//
// Records returns the payloads of the client's record-append framing
// (client.EncodeRecord): a split returns the valid records whose header
// starts in its range, skipping zero padding and torn fragments (the
// client's RecordScanner does the parsing and checksum checks). A record is
// at-least-once in a GFS file (paper GFS 3.3): a retried append leaves a
// second copy with the same RecordID, later in the file. A split drops the
// copies it has seen before, and to see copies written before its own range
// it first scans the lookback bytes in front of its start, only collecting
// record IDs. The limit: a duplicate whose first copy lies further back than
// lookback bytes before its split is returned twice, once by each split.
// The default lookback of one split length covers the GFS case, because a
// record append never crosses a chunk boundary, splits follow chunks, and a
// client retries a failed append right away, so the retry lands in the same
// chunk or the next one. The lookback costs reading that many more bytes per
// split; with a lookback of at least the file's size every split scans from
// offset 0 and the union of the splits is exactly a whole-file RecordScanner.
//
// # Reading
//
// Both read f with large reads (ReadBufferBytes) through io.ReaderAt, never
// past Split.FileSize when it is set, and report in Stats the records they
// returned and the bytes they read from f (which include the look back and
// the read past the end, so summed over splits it exceeds the file size).
// The data handed to fn aliases an internal buffer: it is valid only during
// the call. An error fn returns stops the read and is returned as is.
package input
