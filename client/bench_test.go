package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
)

// Client benchmarks on an in-process cluster (3 chunkservers, 3 replicas,
// 64 MiB chunks) over loopback. Baselines: `gfs bench` measures raw
// loopback TCP and O_DIRECT disk throughput in the same run; compare
// against those, not against absolute numbers.

func benchCluster(b *testing.B) *client.Client {
	opts := cluster.Options{
		Dir: b.TempDir(), Chunkservers: 3, Replication: 3,
		LeaseTTL: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond,
	}
	_, c := startCluster(b, opts)
	return c
}

// BenchmarkWriteAt: sequential WriteAt calls of 8 and 32 MiB (split into
// pieces of at most 8 MiB, up to two in flight, each pushed along a
// 3-replica chain).
func BenchmarkWriteAt(b *testing.B) {
	for _, size := range []int{8 << 20, 32 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			c := benchCluster(b)
			ctx := context.Background()
			if err := c.Create(ctx, "/w", client.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			f, _ := c.Open(ctx, "/w")
			buf := randomBytes(1, size)
			if _, err := f.WriteAtContext(ctx, buf, 0); err != nil { // lease, allocation
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := f.WriteAtContext(ctx, buf, int64(i)*int64(len(buf))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamRead: the streaming Reader over a 128 MiB file.
func BenchmarkStreamRead(b *testing.B) {
	c := benchCluster(b)
	ctx := context.Background()
	if err := c.Create(ctx, "/r", client.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	f, _ := c.Open(ctx, "/r")
	const size = 128 << 20
	if _, err := f.WriteAtContext(ctx, randomBytes(2, size), 0); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := f.NewReader(ctx)
		n, err := r.WriteTo(io.Discard)
		r.Close()
		if err != nil || n != size {
			b.Fatalf("read %d, %v", n, err)
		}
	}
}

// BenchmarkStreamReadLatency: the streaming Reader over a 128 MiB file
// read in 1 MiB io.ReadFull calls, as `gfs bench` seqread does; reports the
// first call's latency (first-ms: the window ramping up) and the p50/p99 of
// all calls besides MB/s. Baseline: BenchmarkStreamRead (WriteTo, no
// per-call waits).
func BenchmarkStreamReadLatency(b *testing.B) {
	c := benchCluster(b)
	ctx := context.Background()
	if err := c.Create(ctx, "/r", client.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	f, _ := c.Open(ctx, "/r")
	const size = 128 << 20
	if _, err := f.WriteAtContext(ctx, randomBytes(2, size), 0); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var lats, firsts []time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := f.NewReader(ctx)
		var total int64
		for {
			t0 := time.Now()
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				d := time.Since(t0)
				if total == 0 {
					firsts = append(firsts, d)
				}
				lats = append(lats, d)
				total += int64(n)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
		if total != size {
			b.Fatalf("read %d of %d", total, size)
		}
	}
	b.StopTimer()
	slices.Sort(lats)
	slices.Sort(firsts)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(firsts[len(firsts)/2]), "first-ms")
	b.ReportMetric(ms(lats[len(lats)/2]), "p50-ms")
	b.ReportMetric(ms(lats[len(lats)*99/100]), "p99-ms")
}

// BenchmarkRecordAppend: 16 goroutines appending 4 KiB records to one file.
func BenchmarkRecordAppend(b *testing.B) {
	c := benchCluster(b)
	ctx := context.Background()
	if err := c.Create(ctx, "/log", client.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	rec := randomBytes(3, 4<<10)
	if _, err := c.RecordAppend(ctx, "/log", rec); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 appenders
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.RecordAppend(ctx, "/log", rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRecordReader: scanning framed 4 KiB records in memory (no I/O).
func BenchmarkRecordReader(b *testing.B) {
	var file []byte
	payload := randomBytes(4, 4<<10)
	for i := 0; i < 1024; i++ {
		file, _ = client.EncodeRecord(file, client.RecordID{Writer: 1, Sequence: uint64(i + 1)}, payload)
	}
	b.SetBytes(int64(len(file)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rr := client.NewRecordScanner(bytesReader(file), 0)
		n := 0
		for {
			_, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1024 {
			b.Fatal(fmt.Sprint("records: ", n))
		}
	}
}

type sliceReader struct {
	b   []byte
	off int
}

func bytesReader(b []byte) *sliceReader { return &sliceReader{b: b} }

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}
