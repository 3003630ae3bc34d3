package oplog

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkGroupCommit64 measures durable records/s with 64 concurrent
// callers sharing fdatasyncs. Baseline: BenchmarkFsyncPerRecord64.
func BenchmarkGroupCommit64(b *testing.B) {
	l, err := Open(b.TempDir(), Options{}, Replayer{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 100)
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Commit(rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFsyncPerRecord64 is the baseline: 64 concurrent callers, each
// record written and fdatasynced on its own (a mutex serializes them).
func BenchmarkFsyncPerRecord64(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	rec := appendFrame(nil, 1, make([]byte, 100))
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.SetBytes(100)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			_, err := f.Write(rec)
			if err == nil {
				err = fdatasync(f)
			}
			mu.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
