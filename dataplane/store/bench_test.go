package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks write 64 MiB chunks in the directory named by
// STORE_BENCH_DIR (default: a fresh temporary directory, i.e. the same file
// system as the tests) and compare against raw O_DIRECT I/O of the same
// sizes on the same directory: BenchmarkAppend1MiB and BenchmarkAppend64KiB
// against BenchmarkRawODirectWrite1MiB/64KiB, BenchmarkReadVerified against
// BenchmarkRawODirectRead.

const benchChunk = 64 << 20

func benchDir(b *testing.B) string {
	if d := os.Getenv("STORE_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "storebench")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

func benchAppend(b *testing.B, size int) {
	dir := benchDir(b)
	s := openT(b, dir, Options{ScrubRate: -1})
	defer s.Close()
	buf := GetBuffer(size)
	defer PutBuffer(buf)
	fill(buf.B)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h := Handle(i + 1)
		if err := s.Create(h, 1); err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchChunk; off += size {
			if _, err := s.Append(h, buf.B); err != nil {
				b.Fatal(err)
			}
		}
		if i >= 2 {
			// Keep the disk footprint bounded.
			if err := s.Delete(h - 2); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAppend1MiB: sequential 1 MiB appends filling 64 MiB chunks
// (baseline: BenchmarkRawODirectWrite1MiB).
func BenchmarkAppend1MiB(b *testing.B) { benchAppend(b, 1<<20) }

// BenchmarkAppend64KiB: sequential 64 KiB appends filling 64 MiB chunks
// (baseline: BenchmarkRawODirectWrite64KiB).
func BenchmarkAppend64KiB(b *testing.B) { benchAppend(b, 64<<10) }

func benchRawWrite(b *testing.B, size int) {
	dir := benchDir(b)
	buf := GetBuffer(size)
	defer PutBuffer(buf)
	fill(buf.B)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		path := filepath.Join(dir, fmt.Sprintf("raw%d", i))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < benchChunk; off += size {
			if _, err := f.WriteAt(buf.B, int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		if i >= 2 {
			os.Remove(filepath.Join(dir, fmt.Sprintf("raw%d", i-2)))
		}
	}
}

// BenchmarkRawODirectWrite1MiB is the machine limit for BenchmarkAppend1MiB:
// 1 MiB O_DIRECT pwrites filling fresh 64 MiB files in the same directory.
func BenchmarkRawODirectWrite1MiB(b *testing.B) { benchRawWrite(b, 1<<20) }

// BenchmarkRawODirectWrite64KiB is the limit for BenchmarkAppend64KiB.
func BenchmarkRawODirectWrite64KiB(b *testing.B) { benchRawWrite(b, 64<<10) }

// BenchmarkReadVerified reads a 64 MiB chunk sequentially in 1 MiB verified
// ReadAt calls into aligned memory (baseline: BenchmarkRawODirectRead).
func BenchmarkReadVerified(b *testing.B) {
	dir := benchDir(b)
	s := openT(b, dir, Options{ScrubRate: -1})
	defer s.Close()
	buf := GetBuffer(1 << 20)
	defer PutBuffer(buf)
	fill(buf.B)
	if err := s.Create(1, 1); err != nil {
		b.Fatal(err)
	}
	for off := 0; off < benchChunk; off += len(buf.B) {
		if _, err := s.Append(1, buf.B); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < benchChunk; off += int64(len(buf.B)) {
			if _, err := s.ReadAt(1, buf.B, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRawODirectRead is the machine limit for BenchmarkReadVerified:
// 1 MiB O_DIRECT preads of a 64 MiB file in the same directory.
func BenchmarkRawODirectRead(b *testing.B) {
	dir := benchDir(b)
	buf := GetBuffer(1 << 20)
	defer PutBuffer(buf)
	fill(buf.B)
	path := filepath.Join(dir, "raw")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for off := 0; off < benchChunk; off += len(buf.B) {
		if _, err := f.WriteAt(buf.B, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < benchChunk; off += int64(len(buf.B)) {
			if _, err := f.ReadAt(buf.B, off); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func fill(p []byte) {
	x := uint32(2463534242)
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
}

// BenchmarkWriteRatio and BenchmarkReadRatio alternate, chunk by chunk, the
// store and its raw O_DIRECT baseline in the same run, so that noise from
// other load hits both alike; they report the throughput ratio store/raw
// (the figure the performance targets are stated in).
func BenchmarkWriteRatio(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := benchDir(b)
			s := openT(b, dir, Options{ScrubRate: -1})
			defer s.Close()
			buf := GetBuffer(size)
			defer PutBuffer(buf)
			fill(buf.B)
			var rawT, storeT time.Duration
			b.SetBytes(2 * benchChunk)
			for i := 0; b.Loop(); i++ {
				path := filepath.Join(dir, fmt.Sprintf("raw%d", i))
				t0 := time.Now()
				f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
				if err != nil {
					b.Fatal(err)
				}
				for off := 0; off < benchChunk; off += size {
					if _, err := f.WriteAt(buf.B, int64(off)); err != nil {
						b.Fatal(err)
					}
				}
				f.Close()
				t1 := time.Now()
				h := Handle(i + 1)
				if err := s.Create(h, 1); err != nil {
					b.Fatal(err)
				}
				for off := 0; off < benchChunk; off += size {
					if _, err := s.Append(h, buf.B); err != nil {
						b.Fatal(err)
					}
				}
				t2 := time.Now()
				rawT += t1.Sub(t0)
				storeT += t2.Sub(t1)
				os.Remove(path)
				if err := s.Delete(h); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rawT)/float64(storeT), "store/raw")
			b.ReportMetric(float64(b.N)*benchChunk/rawT.Seconds()/1e6, "raw-MB/s")
			b.ReportMetric(float64(b.N)*benchChunk/storeT.Seconds()/1e6, "store-MB/s")
		})
	}
}

func BenchmarkReadRatio(b *testing.B) {
	dir := benchDir(b)
	s := openT(b, dir, Options{ScrubRate: -1})
	defer s.Close()
	buf := GetBuffer(1 << 20)
	defer PutBuffer(buf)
	fill(buf.B)
	f, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := s.Create(1, 1); err != nil {
		b.Fatal(err)
	}
	for off := 0; off < benchChunk; off += len(buf.B) {
		if _, err := f.WriteAt(buf.B, int64(off)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(1, buf.B); err != nil {
			b.Fatal(err)
		}
	}
	var rawT, storeT time.Duration
	b.SetBytes(2 * benchChunk)
	for b.Loop() {
		t0 := time.Now()
		for off := int64(0); off < benchChunk; off += int64(len(buf.B)) {
			if _, err := f.ReadAt(buf.B, off); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for off := int64(0); off < benchChunk; off += int64(len(buf.B)) {
			if _, err := s.ReadAt(1, buf.B, off); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		rawT += t1.Sub(t0)
		storeT += t2.Sub(t1)
	}
	b.ReportMetric(float64(rawT)/float64(storeT), "store/raw")
	b.ReportMetric(float64(b.N)*benchChunk/rawT.Seconds()/1e6, "raw-MB/s")
	b.ReportMetric(float64(b.N)*benchChunk/storeT.Seconds()/1e6, "store-MB/s")
}

// BenchmarkOpenDirty opens a store whose 1,000 chunks of 1 MiB were all
// being written when the process died (header not clean): every block of
// every chunk is verified before Open returns, as after a kill -9.
func BenchmarkOpenDirty(b *testing.B) {
	const n, size = 1000, 1 << 20
	dir := benchDir(b)
	s := openT(b, dir, Options{ScrubRate: -1, ChunkSize: 4 << 20})
	buf := GetBuffer(size)
	fill(buf.B)
	for h := Handle(1); h <= n; h++ {
		if err := s.Create(h, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Append(h, buf.B); err != nil {
			b.Fatal(err)
		}
	}
	PutBuffer(buf)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	markDirty := func() {
		for h := Handle(1); h <= n; h++ {
			p := filepath.Join(dir, fmt.Sprintf("%016x.meta", uint64(h)))
			raw, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			hd, err := decodeHeader(raw)
			if err != nil {
				b.Fatal(err)
			}
			hd.Clean = false
			encodeHeader(raw, hd)
			if err := os.WriteFile(p, raw, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(n * size)
	for b.Loop() {
		b.StopTimer()
		markDirty() // the verification reads with O_DIRECT: from the disk
		b.StartTimer()
		s2, err := Open(dir, Options{ScrubRate: -1, ChunkSize: 4 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s2.Close()
		b.StartTimer()
	}
}
