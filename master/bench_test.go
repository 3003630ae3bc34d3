package master

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/gfs-go/gfs/control/controlpb"
)

// BenchmarkCreateDurable measures durable creates/s through gRPC on
// loopback. callers=1 is the baseline where every create waits for its own
// fdatasync; with 64 callers group commit shares them.
func BenchmarkCreateDurable(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			e := newEnv(b, nil)
			var n atomic.Int64
			b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			if callers == 1 {
				b.SetParallelism(1)
			}
			b.ResetTimer()
			run := func(next func() bool) {
				for next() {
					p := fmt.Sprintf("/bench/d%d/f%d", n.Load()%16, n.Add(1))
					if _, err := e.mc.Create(context.Background(), &controlpb.CreateRequest{Path: p, Parents: true}); err != nil {
						b.Error(err)
						return
					}
				}
			}
			if callers == 1 {
				i := 0
				run(func() bool { i++; return i <= b.N })
			} else {
				b.RunParallel(func(pb *testing.PB) { run(pb.Next) })
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}

// BenchmarkLookup measures read lookups/s (64 concurrent callers over gRPC)
// of random chunks of a 1000-chunk file with 3 replicas each.
func BenchmarkLookup(b *testing.B) {
	e := newEnv(b, nil)
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/big", 3)
	const chunks = 1000
	for i := int64(0); i < chunks; i += lookupMax {
		if _, err := e.mc.Lookup(e.ctx(), &controlpb.LookupRequest{Path: "/big", FirstIndex: i, Count: min(lookupMax, chunks-i), Allocate: true}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			idx := (n.Add(7919)) % chunks
			resp, err := e.mc.Lookup(context.Background(), &controlpb.LookupRequest{Path: "/big", FirstIndex: idx, Count: 1})
			if err != nil || len(resp.Chunks) != 1 || len(resp.Chunks[0].Replicas) != 3 {
				b.Errorf("lookup %d: %v %v", idx, resp, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkHeapPerChunk measures master heap bytes per chunk with 1 million
// chunks (1000 files of 1000 chunks, 3 replicas each): namespace entry
// share, chunk table entry, version, replica list.
func BenchmarkHeapPerChunk(b *testing.B) {
	const files, perFile = 1000, 1000
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		st := newState()
		st.ceiling = files*perFile + 1
		for f := 0; f < files; f++ {
			p := fmt.Sprintf("/data/part-%05d", f)
			if err := st.create(p, 3, true, 1); err != nil {
				b.Fatal(err)
			}
			for c := 0; c < perFile; c++ {
				h := uint64(f*perFile + c + 1)
				if err := st.addChunk(p, uint64(c), h, 1); err != nil {
					b.Fatal(err)
				}
				st.chunks[h].replicas = append(st.chunks[h].replicas, serverID(c%7), serverID(c%7+1), serverID(c%7+2))
				st.chunks[h].length = 64 << 20
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(files*perFile), "heap-bytes/chunk")
		runtime.KeepAlive(st)
	}
}

// BenchmarkLookupInProcess is BenchmarkLookup without gRPC: the master's own
// cost per lookup (path locks, table reads, response building).
func BenchmarkLookupInProcess(b *testing.B) {
	e := newEnv(b, nil)
	for i := 0; i < 3; i++ {
		e.addCS("")
	}
	e.create("/big", 3)
	const chunks = 1000
	for i := int64(0); i < chunks; i += lookupMax {
		if _, err := e.mc.Lookup(e.ctx(), &controlpb.LookupRequest{Path: "/big", FirstIndex: i, Count: min(lookupMax, chunks-i), Allocate: true}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			idx := (n.Add(7919)) % chunks
			resp, err := e.m.Lookup(ctx, &controlpb.LookupRequest{Path: "/big", FirstIndex: idx, Count: 1})
			if err != nil || len(resp.Chunks) != 1 {
				b.Errorf("lookup %d: %v %v", idx, resp, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
