package dataclient

import (
	"context"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// benchChunk is a 64 MiB chunk served from memory by the benchmarks.
const benchChunkBytes = 64 << 20

// BenchmarkReadClient isolates the client's read path: a server streaming
// a 64 MiB chunk from memory (no disk, no store) to Read, with block
// verification inline in the receiving goroutine and overlapped on a
// second goroutine, against the same bytes sent raw to a reader that only
// reads. The three alternate within each iteration so that the noise of
// a shared machine hits them alike.
func BenchmarkReadClient(b *testing.B) {
	data := make([]byte, benchChunkBytes)
	for i := range data {
		data[i] = byte(i*31 + i>>11)
	}
	sums := make([]uint64, benchChunkBytes/BlockSize)
	for i := range sums {
		sums[i] = xxhash.Sum64(data[i*BlockSize : (i+1)*BlockSize])
	}
	srv := startFake(b, func(w io.Writer, h wire.Header, meta, _ []byte) {
		var req wire.ReadRequest
		if err := req.Decode(meta); err != nil {
			return
		}
		start := req.Offset / BlockSize * BlockSize
		end := min((req.Offset+req.Length+BlockSize-1)/BlockSize*BlockSize, benchChunkBytes)
		rh := wire.Header{Op: h.Op, Flags: wire.FlagResponse, RequestID: h.RequestID, PayloadLen: uint32(end - start)}
		hdr := wire.AppendRequest(nil, &rh, nil, &wire.ReadResponse{ChunkLength: benchChunkBytes, RangeOffset: start, Sums: sums[start/BlockSize : end/BlockSize]})
		bufs := net.Buffers{hdr, data[start:end]}
		_, _ = bufs.WriteTo(w.(net.Conn))
	})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	go func() {
		for {
			nc, err := raw.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				var one [1]byte
				for {
					if _, err := io.ReadFull(nc, one[:]); err != nil {
						return
					}
					if _, err := nc.Write(data); err != nil {
						return
					}
				}
			}()
		}
	}()
	rc, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	dc := New(Options{})
	defer dc.Close()
	buf := make([]byte, benchChunkBytes)
	ctx := context.Background()
	defer func(v int64) { asyncVerifyMin = v }(asyncVerifyMin)
	async := asyncVerifyMin
	var d [3]time.Duration
	for i := 0; i < b.N; i++ {
		for m := range d {
			t0 := time.Now()
			switch m {
			case 0, 1:
				asyncVerifyMin = []int64{math.MaxInt64, async}[m]
				if _, err := dc.Read(ctx, srv.lis.Addr().String(), 1, 0, 0, buf); err != nil {
					b.Fatal(err)
				}
			case 2:
				if _, err := rc.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(rc, buf); err != nil {
					b.Fatal(err)
				}
			}
			d[m] += time.Since(t0)
		}
	}
	rate := func(d time.Duration) float64 { return float64(benchChunkBytes) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(rate(d[0]), "inline-MB/s")
	b.ReportMetric(rate(d[1]), "async-MB/s")
	b.ReportMetric(rate(d[2]), "raw-MB/s")
	b.ReportMetric(rate(d[0])/rate(d[2]), "inline-ratio")
	b.ReportMetric(rate(d[1])/rate(d[2]), "async-ratio")
	b.SetBytes(3 * benchChunkBytes)
}
