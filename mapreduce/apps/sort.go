package apps

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/input"
)

// SortKeyBytes is the length of a sort key: TeraSort's 100-byte records
// (99 bytes and "\n") are ordered and partitioned by their first 10 bytes.
const SortKeyBytes = 10

// Sampling limits of the sort job's Prepare (TeraSort samples a fixed
// number of keys from a few places of the input rather than reading it).
const (
	sortSamplesPerFile = 1000
	sortSamplePlaces   = 10       // evenly spread places per file
	sortSamplesTotal   = 100_000  // across all files: many files get fewer each
	sortSampleWindow   = 64 << 10 // bytes read at each place
)

// Sort builds the TeraSort-style sort job: the map emits each line as a key,
// the reduce writes it back once per occurrence, and a sampled range
// partitioner (see the package doc) makes the output globally ordered
// across part files. Its Prepare samples the input and stores the
// boundaries in conf[ConfSortBoundaries]; malformed boundaries there fail
// the build. Any line length works; 100-byte records are what the
// benchmark writes.
func Sort(conf mapreduce.Config) (*mapreduce.Job, error) {
	in, err := inputFormat(conf)
	if err != nil {
		return nil, err
	}
	p := &rangePartitioner{input: in}
	if enc, ok := conf[ConfSortBoundaries]; ok {
		if p.bounds, err = decodeBoundaries(enc); err != nil {
			return nil, err
		}
	}
	return &mapreduce.Job{
		Input:     in,
		Map:       mapLineAsKey,
		Reduce:    reduceKeyPerValue,
		Partition: p.partition,
		Prepare:   p.prepare,
	}, nil
}

// rangePartitioner sends keys to partitions by their 10-byte prefix.
// bounds is set when the job is built and, on the submitter, by prepare,
// which runs before any task: never while partition runs.
type rangePartitioner struct {
	input  mapreduce.InputFormat // what prepare samples
	bounds [][]byte              // non-decreasing
}

// partition returns the number of boundaries at or below key's prefix,
// capped at the last partition: monotone in key, hence ordered output.
func (p *rangePartitioner) partition(key []byte, reduces int) int {
	if reduces <= 1 || len(p.bounds) == 0 {
		return 0
	}
	k := key[:min(len(key), SortKeyBytes)]
	i := sort.Search(len(p.bounds), func(i int) bool { return bytes.Compare(p.bounds[i], k) > 0 })
	return min(i, reduces-1)
}

// prepare samples the input, picks reduces-1 boundaries, stores them in
// conf for the workers, and installs them here so this very Job (a
// single-process runner's) partitions with them too.
func (p *rangePartitioner) prepare(ctx context.Context, in mapreduce.InputReader, reduces int, conf mapreduce.Config) error {
	if reduces <= 1 {
		return nil
	}
	if conf == nil {
		return errors.New("sort: prepare needs a conf to store its boundaries in")
	}
	samples, err := sampleKeys(ctx, in, p.input)
	if err != nil {
		return err
	}
	bounds := pickBoundaries(samples, reduces)
	conf[ConfSortBoundaries] = encodeBoundaries(bounds)
	p.bounds = bounds
	return nil
}

// pickBoundaries returns up to reduces-1 keys splitting the sorted samples
// into equal shares (none without samples).
func pickBoundaries(samples [][]byte, reduces int) [][]byte {
	if len(samples) == 0 {
		return nil
	}
	slices.SortFunc(samples, bytes.Compare)
	bounds := make([][]byte, 0, reduces-1)
	for i := 1; i < reduces; i++ {
		// An empty boundary (empty lines sampled) only keeps partition 0
		// empty, and alone it would encode as no boundaries at all.
		if b := samples[i*len(samples)/reduces]; len(b) > 0 {
			bounds = append(bounds, b)
		}
	}
	return bounds
}

func encodeBoundaries(bounds [][]byte) string {
	parts := make([]string, len(bounds))
	for i, b := range bounds {
		parts[i] = hex.EncodeToString(b)
	}
	return strings.Join(parts, ",")
}

func decodeBoundaries(enc string) ([][]byte, error) {
	if enc == "" {
		return nil, nil
	}
	parts := strings.Split(enc, ",")
	bounds := make([][]byte, len(parts))
	for i, s := range parts {
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s entry %d %q: %v", ErrBadConfig, ConfSortBoundaries, i, s, err)
		}
		if i > 0 && bytes.Compare(bounds[i-1], b) > 0 {
			return nil, fmt.Errorf("%w: %s entry %d %q is below the one before", ErrBadConfig, ConfSortBoundaries, i, s)
		}
		bounds[i] = b
	}
	return bounds, nil
}

// sampleKeys reads up to sortSamplesPerFile key prefixes from every input
// file, from sortSamplePlaces evenly spread places, each place taking the
// whole lines that start in its share of the file (a line is sampled at
// most once).
func sampleKeys(ctx context.Context, in mapreduce.InputReader, format mapreduce.InputFormat) ([][]byte, error) {
	files := in.Files()
	if len(files) == 0 {
		return nil, nil
	}
	perFile := min(sortSamplesPerFile, max(sortSamplePlaces, sortSamplesTotal/len(files)))
	var samples [][]byte
	buf := make([]byte, sortSampleWindow)
	for _, f := range files {
		places := int64(min(sortSamplePlaces, perFile))
		perPlace := perFile / int(places)
		for i := range places {
			from, to := f.Size*i/places, f.Size*(i+1)/places
			if from == to {
				continue
			}
			var err error
			if format == mapreduce.RecordInput {
				samples, err = sampleRecordsAt(ctx, in, f, from, to, perPlace, samples)
			} else {
				samples, err = sampleAt(ctx, in, f, from, to, perPlace, buf, samples)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return samples, nil
}

// sampleAt appends the key prefixes of up to n lines that start in
// [from, to) of f and end within one window read there.
func sampleAt(ctx context.Context, in mapreduce.InputReader, f mapreduce.InputFile, from, to int64, n int, buf []byte, samples [][]byte) ([][]byte, error) {
	start := from
	if start > 0 {
		start-- // as input.Text: a line starting exactly at from is ours
	}
	buf = buf[:min(int64(len(buf)), f.Size-start)]
	got, err := in.ReadAt(ctx, f.Path, buf, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return samples, fmt.Errorf("sort: sample %s at offset %d: %w", f.Path, start, err)
	}
	buf = buf[:got]
	atEOF := start+int64(got) >= f.Size
	pos := 0
	if from > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return samples, nil // one line longer than the window
		}
		pos = i + 1
	}
	for ; n > 0 && start+int64(pos) < to && pos < len(buf); n-- {
		line := buf[pos:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		} else if !atEOF {
			break // cut by the window: its key may be too
		}
		pos += len(line) + 1
		line = bytes.TrimSuffix(line, []byte("\r"))
		samples = append(samples, bytes.Clone(line[:min(len(line), SortKeyBytes)]))
	}
	return samples, nil
}

// errEnoughSamples stops a sampling read.
var errEnoughSamples = errors.New("enough samples")

// sampleRecordsAt appends the key prefixes of up to n framed records whose
// header starts in [from, to) of f (duplicates across places are possible
// and harmless: samples only weigh the boundaries).
func sampleRecordsAt(ctx context.Context, in mapreduce.InputReader, f mapreduce.InputFile, from, to int64, n int, samples [][]byte) ([][]byte, error) {
	s := input.Split{Path: f.Path, Offset: from, Length: to - from, FileSize: f.Size}
	_, err := input.Records(ctx, inputFile{ctx, in, f.Path}, s, 1, func(_ int64, data []byte) error {
		samples = append(samples, bytes.Clone(data[:min(len(data), SortKeyBytes)]))
		if n--; n == 0 {
			return errEnoughSamples
		}
		return nil
	})
	if err != nil && err != errEnoughSamples {
		return samples, fmt.Errorf("sort: sample: %w", err)
	}
	return samples, nil
}

// inputFile is one file of an InputReader as an io.ReaderAt.
type inputFile struct {
	ctx  context.Context
	in   mapreduce.InputReader
	path string
}

func (f inputFile) ReadAt(p []byte, off int64) (int, error) {
	return f.in.ReadAt(f.ctx, f.path, p, off)
}
