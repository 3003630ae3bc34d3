package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// odirectIOBytes is the O_DIRECT baseline's request size.
const odirectIOBytes = 1 << 20

// odirectMaxBytes bounds the baseline's file on a very fast disk.
const odirectMaxBytes = 8 << 30

// measureODirect writes a file sequentially with O_DIRECT and 1 MiB aligned
// buffers for d (plus one fdatasync, inside the timing), then reads it back
// sequentially with O_DIRECT for d, wrapping around at its end. Value is
// the write figure (one replica's disk ceiling); both are in Parts.
func measureODirect(ctx context.Context, dir string, d time.Duration, prog *progress) (Baseline, error) {
	path := filepath.Join(dir, "odirect-baseline")
	defer os.Remove(path)
	buf := alignedBuffer(odirectIOBytes)
	NewPattern(2).Fill(2, buf, 0)
	b := Baseline{Name: BaselineODirect, Unit: UnitMiBPerS, Clients: 1, Runs: 1, Parts: map[string]float64{}}

	f, direct, err := openDirect(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return Baseline{}, fmt.Errorf("odirect baseline: %w", err)
	}
	c := &counters{}
	stop := prog.start("baseline odirect write", c)
	start := time.Now()
	var written int64
	for time.Since(start) < d && written < odirectMaxBytes && ctx.Err() == nil {
		if _, err := f.Write(buf); err != nil {
			stop()
			f.Close()
			return Baseline{}, fmt.Errorf("odirect baseline: write: %w", err)
		}
		written += int64(len(buf))
		c.bytes.Add(int64(len(buf)))
		c.ops.Add(1)
	}
	if err := syncData(f); err != nil {
		stop()
		f.Close()
		return Baseline{}, fmt.Errorf("odirect baseline: fdatasync: %w", err)
	}
	wsecs := time.Since(start).Seconds()
	stop()
	if err := f.Close(); err != nil {
		return Baseline{}, fmt.Errorf("odirect baseline: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Baseline{}, err
	}
	b.Parts["write_mib_per_s"] = float64(written) / (1 << 20) / wsecs

	f, _, err = openDirect(path, os.O_RDONLY, 0)
	if err != nil {
		return Baseline{}, fmt.Errorf("odirect baseline: %w", err)
	}
	defer f.Close()
	c = &counters{}
	stop = prog.start("baseline odirect read", c)
	defer stop()
	start = time.Now()
	var read, off int64
	for time.Since(start) < d && ctx.Err() == nil {
		if off >= written {
			off = 0
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && n == 0 {
			return Baseline{}, fmt.Errorf("odirect baseline: read at %d: %w", off, err)
		}
		off += int64(n)
		read += int64(n)
		c.bytes.Add(int64(n))
		c.ops.Add(1)
	}
	rsecs := time.Since(start).Seconds()
	b.Parts["read_mib_per_s"] = float64(read) / (1 << 20) / rsecs
	b.Value = b.Parts["write_mib_per_s"]
	b.Seconds = wsecs + rsecs
	if !direct {
		b.Note = "file system refused O_DIRECT: buffered"
	}
	return b, ctx.Err()
}
