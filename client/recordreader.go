package client

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record is one record returned by a RecordReader.
type Record struct {
	// ID names the record: the writer's id and its sequence number.
	ID RecordID
	// Offset is the file offset of the record's header.
	Offset int64
	// Data is the payload. It aliases the reader's buffer and is valid only
	// until the next call to Next; copy it to keep it.
	Data []byte
}

// RecordReader returns the records of a file written with RecordAppend, each
// acknowledged record exactly once and in file order (order of first
// occurrence). It skips the zero padding primaries write at chunk ends, torn
// or partial fragments left by failed appends, and the duplicates that
// at-least-once retries produce (same RecordID seen before).
//
// A record whose append failed may still be returned if some replica kept
// it: GFS record append is at-least-once, never at-most-once.
type RecordReader struct {
	src        io.Reader
	maxPayload int
	buf        []byte // buf[r:w] holds unparsed bytes
	r, w       int
	base       int64 // file offset of buf[0]
	eof        bool
	err        error // sticky error from src (not io.EOF) or from Close
	seen       *idSet
	closer     func() error
}

const recordReadSize = 1 << 20

var magicBytes = binary.LittleEndian.AppendUint32(nil, recordMagic)

// NewRecordScanner returns a RecordReader over any stream of framed records
// (for example a local copy of a GFS file). maxPayload bounds the payload
// length a header may claim; 0 means MaxRecordPayload. Records are expected
// to start at offset 0 of r.
func NewRecordScanner(r io.Reader, maxPayload int) *RecordReader {
	if maxPayload <= 0 || maxPayload > MaxRecordPayload {
		maxPayload = MaxRecordPayload
	}
	return &RecordReader{src: r, maxPayload: maxPayload, seen: newIDSet()}
}

// Next returns the next record, or io.EOF when the stream ends. Other errors
// come from reading the file.
func (rr *RecordReader) Next() (Record, error) {
	for {
		if rr.err != nil {
			return Record{}, rr.err
		}
		data := rr.buf[rr.r:rr.w]
		i := bytes.Index(data, magicBytes)
		if i < 0 {
			// Keep a possible magic prefix at the end, drop the rest.
			keep := min(len(data), len(magicBytes)-1)
			rr.r = rr.w - keep
			if rr.eof {
				rr.r = rr.w
				return Record{}, io.EOF
			}
			rr.fill(len(magicBytes))
			continue
		}
		rr.r += i
		id, payload, total, res := parseRecord(rr.buf[rr.r:rr.w], rr.maxPayload)
		switch res {
		case parseOK:
			off := rr.base + int64(rr.r)
			rr.r += total
			if !rr.seen.add(id) {
				continue // a duplicate left by a retried append
			}
			return Record{ID: id, Offset: off, Data: payload}, nil
		case parseNeedMore:
			if rr.eof {
				// A torn record at the end of the stream (or one still
				// being appended): not a record.
				rr.r++
				continue
			}
			need := RecordHeaderSize
			if rr.w-rr.r >= 8 {
				need += int(binary.LittleEndian.Uint32(rr.buf[rr.r+4:]))
			}
			rr.fill(need)
		default:
			rr.r++
		}
	}
}

// fill reads more input so that buf[r:w] holds at least need bytes, unless
// the stream ends first. It compacts and grows the buffer as needed.
func (rr *RecordReader) fill(need int) {
	if rr.r > 0 {
		n := copy(rr.buf, rr.buf[rr.r:rr.w])
		rr.base += int64(rr.r)
		rr.w = n
		rr.r = 0
	}
	want := max(need, recordReadSize)
	if len(rr.buf) < want {
		nb := make([]byte, want)
		copy(nb, rr.buf[:rr.w])
		rr.buf = nb
	}
	for rr.w < need || rr.w == 0 {
		n, err := rr.src.Read(rr.buf[rr.w:])
		rr.w += n
		if errors.Is(err, io.EOF) {
			rr.eof = true
			return
		}
		if err != nil {
			rr.err = fmt.Errorf("read records: %w", err)
			return
		}
	}
}

// Close releases the reader's resources (the streaming file reader behind it,
// when it came from Client.NewRecordReader).
func (rr *RecordReader) Close() error {
	if rr.closer != nil {
		err := rr.closer()
		rr.closer = nil
		return err
	}
	return nil
}
