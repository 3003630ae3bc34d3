package input

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/gfs-go/gfs/client"
)

// Records reads the record-append framed records (client.EncodeRecord) of
// split s from f: those whose header starts in [s.Offset, s.End()), in file
// order, calling fn(offset of the header, payload) once per RecordID.
// Padding and torn fragments are skipped. Duplicates are dropped when the
// earlier copy lies in the split or in the lookback bytes before s.Offset,
// which are scanned first only to collect IDs; lookback 0 means one split
// length (see the package doc for the limit). data is valid only during
// the call. An error from fn is returned unchanged.
func Records(ctx context.Context, f io.ReaderAt, s Split, lookback int64, fn func(off int64, data []byte) error) (Stats, error) {
	var st Stats
	if err := s.check(); err != nil {
		return st, err
	}
	if lookback < 0 {
		return st, fmt.Errorf("%w: %s: negative lookback %d", ErrBadSplit, s, lookback)
	}
	if lookback == 0 {
		lookback = s.Length
	}
	from := max(0, s.Offset-lookback)
	end := s.End()
	// A record whose header starts before end is at most a header and a
	// maximal payload long: reading further could only find records that
	// are not ours (and garbage without a magic would be scanned for
	// nothing).
	limit := s.limit()
	if end < math.MaxInt64-client.RecordHeaderSize-client.MaxRecordPayload {
		limit = min(limit, end+client.RecordHeaderSize+client.MaxRecordPayload)
	}
	c := &cursor{ctx: ctx, f: f, split: s, next: from, limit: limit}
	done := func(err error) (Stats, error) {
		st.Bytes = c.bytes
		return st, err
	}
	// One scanner over lookback and split: its ID set then holds every
	// record before the split's start too, and a record that starts in
	// the look back and runs into our range is parsed whole and skipped, as
	// a scan of the whole file would.
	// No record is longer than the bytes we may read; telling the scanner
	// so keeps a garbage header claiming a huge length from making it
	// allocate (and wait for) that much.
	maxPayload := client.MaxRecordPayload
	if avail := limit - from - client.RecordHeaderSize; avail < int64(maxPayload) {
		maxPayload = int(max(avail, 1)) // 0 would mean the default
	}
	sc := client.NewRecordScanner(c, maxPayload)
	for {
		rec, err := sc.Next()
		if errors.Is(err, io.EOF) {
			return done(nil)
		}
		if err != nil {
			return done(err)
		}
		off := from + rec.Offset
		if off >= end {
			return done(nil)
		}
		if off < s.Offset {
			continue // the look back: only its IDs matter
		}
		st.Records++
		if st.Records%ctxCheckRecords == 0 {
			if err := ctx.Err(); err != nil {
				return done(fmt.Errorf("read %s: %w", s, err))
			}
		}
		if err := fn(off, rec.Data); err != nil {
			return done(err)
		}
	}
}
