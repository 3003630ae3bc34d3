package shuffle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
)

// Errors of the package, each wrapped with context.
var (
	// ErrCorrupt: a segment or index whose bytes fail a check (checksum,
	// bound, order, count) or end early. The data must be fetched or
	// produced again.
	ErrCorrupt = errors.New("shuffle: corrupt map output")
	// ErrNotFound: the server has no such map output (unknown job, map or
	// attempt, or the attempt has not finished writing it).
	ErrNotFound = errors.New("shuffle: map output not found")
	// ErrRecordTooLarge: a pair whose key and value together pass
	// MaxRecordBytes.
	ErrRecordTooLarge = errors.New("shuffle: record too large")
	// ErrClosed: a Writer used after Close or Abort.
	ErrClosed = errors.New("shuffle: writer closed")
	// ErrPartition: a partitioner result outside [0, Reduces).
	ErrPartition = errors.New("shuffle: partition out of range")
	// ErrCombineOrder: a combiner emitted a key that sorts before one it
	// already emitted in the same spill, or that belongs to another
	// partition; the output would no longer be sorted and partitioned.
	ErrCombineOrder = errors.New("shuffle: combiner broke key order")
)

// MaxRecordBytes bounds len(key)+len(value) of one pair. It bounds every
// block length a reader accepts.
const MaxRecordBytes = 64 << 20

const (
	segmentMagic     = "GSG1"
	blockHeaderBytes = 12
	trailerBytes     = 16
	// blockTargetBytes: a block is closed once its entries reach this size
	// (the chunkserver's checksum block size; big enough that the 12-byte
	// header and one hash call per block cost nothing).
	blockTargetBytes = 64 << 10
	maxBlockBytes    = MaxRecordBytes + 2*binary.MaxVarintLen64
	// emptySegmentBytes is the size of a segment without records.
	emptySegmentBytes = len(segmentMagic) + blockHeaderBytes + trailerBytes
)

func uvarintLen(x int) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// entryLen returns the encoded size of one pair.
func entryLen(key, value []byte) int {
	return uvarintLen(len(key)) + uvarintLen(len(value)) + len(key) + len(value)
}

func appendEntry(b, key, value []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, key...)
	return append(b, value...)
}

// segmentWriter encodes one segment at a time onto w. It is reused across
// the R segments of a file (begin ... finish, begin ... finish).
type segmentWriter struct {
	w       io.Writer
	blk     []byte // header space, then the current block's entries
	sum     xxhash.Digest
	bytes   int64
	blocks  int64
	records int64
}

func (s *segmentWriter) begin(w io.Writer) error {
	s.w = w
	s.sum.Reset()
	s.bytes, s.blocks, s.records = 0, 0, 0
	if cap(s.blk) < blockHeaderBytes+blockTargetBytes {
		s.blk = make([]byte, 0, blockHeaderBytes+blockTargetBytes+1024)
	}
	s.blk = s.blk[:blockHeaderBytes]
	return s.write([]byte(segmentMagic))
}

func (s *segmentWriter) write(p []byte) error {
	n, err := s.w.Write(p)
	s.sum.Write(p[:n])
	s.bytes += int64(n)
	return err
}

// room makes space for an entry of n bytes, closing the current block if
// the entry would take it past the target size.
func (s *segmentWriter) room(n int) error {
	if len(s.blk) > blockHeaderBytes && len(s.blk)+n > blockHeaderBytes+blockTargetBytes {
		return s.flush()
	}
	return nil
}

// add appends one pair.
func (s *segmentWriter) add(key, value []byte) error {
	if err := s.room(entryLen(key, value)); err != nil {
		return err
	}
	s.blk = appendEntry(s.blk, key, value)
	s.records++
	return nil
}

// addEntry appends one pair already encoded as an entry.
func (s *segmentWriter) addEntry(entry []byte) error {
	if err := s.room(len(entry)); err != nil {
		return err
	}
	s.blk = append(s.blk, entry...)
	s.records++
	return nil
}

func (s *segmentWriter) flush() error {
	payload := s.blk[blockHeaderBytes:]
	if len(payload) == 0 {
		return nil
	}
	binary.LittleEndian.PutUint32(s.blk[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(s.blk[4:12], xxhash.Sum64(payload))
	err := s.write(s.blk)
	s.blocks++
	if cap(s.blk) > 4*(blockHeaderBytes+blockTargetBytes) {
		// A huge pair grew the block; do not keep its memory.
		s.blk = make([]byte, blockHeaderBytes, blockHeaderBytes+blockTargetBytes+1024)
	}
	s.blk = s.blk[:blockHeaderBytes]
	return err
}

// finish writes the last block and the end marker and returns the
// segment's extent (Offset left to the caller).
func (s *segmentWriter) finish() (Extent, error) {
	if err := s.flush(); err != nil {
		return Extent{}, err
	}
	var end [blockHeaderBytes + trailerBytes]byte
	binary.LittleEndian.PutUint64(end[12:20], uint64(s.blocks))
	binary.LittleEndian.PutUint64(end[20:28], uint64(s.records))
	binary.LittleEndian.PutUint64(end[4:12], xxhash.Sum64(end[12:28]))
	if err := s.write(end[:]); err != nil {
		return Extent{}, err
	}
	return Extent{Length: s.bytes, Checksum: s.sum.Sum64(), Records: s.records}, nil
}

// blockReader reads and verifies the blocks of one segment. It reads
// exactly the segment's bytes from r, never past the end marker.
type blockReader struct {
	r       io.Reader
	name    string // for errors: a file name, a URL
	buf     []byte
	started bool
	done    bool
	blocks  int64
	// From the end marker, once done.
	trailerRecords int64
}

func (b *blockReader) reset(r io.Reader, name string) {
	*b = blockReader{r: r, name: name, buf: b.buf}
}

func (b *blockReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("segment %s: %s: %w", b.name, fmt.Sprintf(format, args...), ErrCorrupt)
}

// readErr turns an early end into ErrCorrupt and keeps other I/O errors
// (a disk error, a cancelled request) as they are.
func (b *blockReader) readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("segment %s: truncated in %s after %d blocks: %w", b.name, what, b.blocks, errors.Join(ErrCorrupt, err))
	}
	return fmt.Errorf("segment %s: reading %s: %w", b.name, what, err)
}

// next returns the next block's verified payload, valid until the next
// call, or io.EOF after a verified end marker.
func (b *blockReader) next() ([]byte, error) {
	if b.done {
		return nil, io.EOF
	}
	var hdr [blockHeaderBytes]byte
	if !b.started {
		if _, err := io.ReadFull(b.r, hdr[:len(segmentMagic)]); err != nil {
			return nil, b.readErr("magic", err)
		}
		if string(hdr[:len(segmentMagic)]) != segmentMagic {
			return nil, b.corrupt("bad magic %q", hdr[:len(segmentMagic)])
		}
		b.started = true
	}
	if _, err := io.ReadFull(b.r, hdr[:]); err != nil {
		return nil, b.readErr("block header", err)
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	sum := binary.LittleEndian.Uint64(hdr[4:12])
	if n == 0 {
		var tr [trailerBytes]byte
		if _, err := io.ReadFull(b.r, tr[:]); err != nil {
			return nil, b.readErr("end marker", err)
		}
		if xxhash.Sum64(tr[:]) != sum {
			return nil, b.corrupt("end marker checksum mismatch")
		}
		blocks := binary.LittleEndian.Uint64(tr[0:8])
		records := binary.LittleEndian.Uint64(tr[8:16])
		if blocks != uint64(b.blocks) {
			return nil, b.corrupt("end marker says %d blocks, read %d", blocks, b.blocks)
		}
		if records > 1<<62 {
			return nil, b.corrupt("end marker says %d records", records)
		}
		b.trailerRecords = int64(records)
		b.done = true
		return nil, io.EOF
	}
	if n > maxBlockBytes {
		return nil, b.corrupt("block %d length %d over the bound %d", b.blocks, n, maxBlockBytes)
	}
	p, err := b.readPayload(int(n))
	if err != nil {
		return nil, b.readErr(fmt.Sprintf("block %d payload", b.blocks), err)
	}
	if xxhash.Sum64(p) != sum {
		return nil, b.corrupt("block %d checksum mismatch", b.blocks)
	}
	b.blocks++
	return p, nil
}

// readPayload reads n bytes. Up to the usual block size it reads into the
// reused buffer; beyond, the buffer grows at most twofold per step as bytes
// actually arrive, so a lying length costs at most about twice the bytes
// really present, never the length itself.
func (b *blockReader) readPayload(n int) ([]byte, error) {
	if n <= blockTargetBytes*2 {
		if cap(b.buf) > 4*blockTargetBytes || cap(b.buf) < n {
			b.buf = make([]byte, max(n, blockTargetBytes+1024))
		}
		b.buf = b.buf[:n]
		_, err := io.ReadFull(b.r, b.buf)
		return b.buf, err
	}
	buf := b.buf[:0]
	for len(buf) < n {
		step := min(n, max(2*len(buf), 2*blockTargetBytes))
		if step > cap(buf) {
			nb := make([]byte, len(buf), step)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(b.r, buf[len(buf):step])
		buf = buf[:len(buf)+m]
		if err != nil {
			b.buf = buf[:0]
			return nil, err
		}
	}
	b.buf = buf
	return buf, nil
}

// segmentReader decodes the pairs of one segment, checking their order.
type segmentReader struct {
	br       blockReader
	p        []byte // undecoded rest of the current block
	key, val []byte // current pair, aliasing the block buffer
	haveKey  bool   // key is from the current block
	prev     []byte // last key of the previous block (copied)
	havePrev bool
	records  int64
	err      error
}

func (s *segmentReader) reset(r io.Reader, name string) {
	s.br.reset(r, name)
	s.p, s.key, s.val = nil, nil, nil
	s.haveKey, s.havePrev = false, false
	s.prev = s.prev[:0]
	s.records = 0
	s.err = nil
}

// next advances to the next pair. false at the end or on error (s.err).
func (s *segmentReader) next() bool {
	if s.err != nil {
		return false
	}
	for len(s.p) == 0 {
		if s.haveKey {
			// The block buffer is about to be reused: keep the last key
			// for the order check.
			s.prev = append(s.prev[:0], s.key...)
			s.havePrev = true
			s.haveKey = false
		}
		p, err := s.br.next()
		if err == io.EOF {
			if s.br.trailerRecords != s.records {
				s.err = s.br.corrupt("end marker says %d records, read %d", s.br.trailerRecords, s.records)
			}
			s.key, s.val = nil, nil
			return false
		}
		if err != nil {
			s.err = err
			return false
		}
		s.p = p
	}
	klen, n := binary.Uvarint(s.p)
	if n <= 0 {
		s.err = s.br.corrupt("bad key length in block %d", s.br.blocks-1)
		return false
	}
	rest := s.p[n:]
	vlen, m := binary.Uvarint(rest)
	if m <= 0 {
		s.err = s.br.corrupt("bad value length in block %d", s.br.blocks-1)
		return false
	}
	rest = rest[m:]
	if klen > uint64(len(rest)) || vlen > uint64(len(rest))-klen {
		s.err = s.br.corrupt("entry of %d+%d bytes overruns block %d", klen, vlen, s.br.blocks-1)
		return false
	}
	key := rest[:klen:klen]
	val := rest[klen : klen+vlen : klen+vlen]
	switch {
	case s.haveKey:
		if bytes.Compare(key, s.key) < 0 {
			s.err = s.br.corrupt("keys out of order in block %d", s.br.blocks-1)
			return false
		}
	case s.havePrev:
		if bytes.Compare(key, s.prev) < 0 {
			s.err = s.br.corrupt("keys out of order at block %d", s.br.blocks-1)
			return false
		}
	}
	s.key, s.val, s.haveKey = key, val, true
	s.p = rest[klen+vlen:]
	s.records++
	return true
}
