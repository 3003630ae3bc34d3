package chunkserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/dataplane/dataclient"
	"github.com/gfs-go/gfs/dataplane/store"
)

// benchChunkSize is the real chunk size: benchmarks run what production runs.
const benchChunkSize = 64 << 20

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func startBenchServer(b *testing.B, mod func(*Options)) *Server {
	b.Helper()
	opts := Options{Addr: "127.0.0.1:0", Dir: b.TempDir(), Store: store.Options{ChunkSize: benchChunkSize, ScrubRate: -1}}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	b.Cleanup(func() { s.Close(); <-errc })
	return s
}

// benchChunks creates n chunks of version 1 on every server with a lease
// on the first.
func benchChunks(b *testing.B, servers []*Server, first uint64, n int) {
	b.Helper()
	ctx := context.Background()
	ctls := make([]controlpb.ChunkserverClient, len(servers))
	for i, s := range servers {
		cc, err := control.Dial(s.Addr(), control.DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		ctls[i] = controlpb.NewChunkserverClient(cc)
	}
	for h := first; h < first+uint64(n); h++ {
		for _, c := range ctls {
			if _, err := c.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: h, Version: 1}); err != nil {
				b.Fatal(err)
			}
		}
		var secs []string
		for _, s := range servers[1:] {
			secs = append(secs, s.Addr())
		}
		if _, err := ctls[0].GrantLease(ctx, grantLease(h, 1, 3600_000, secs...)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead streams a cached chunk set from one chunkserver (client
// verifying every block) and, in the same run, the baselines: raw
// sendfile and raw pread+write of the same chunk files over loopback to a
// reader that only reads. GFS_BENCH_READ_MIB sets the set's size (default
// 256 MiB; the figure uses 1024).
func BenchmarkRead(b *testing.B) {
	setMiB := envInt("GFS_BENCH_READ_MIB", 256)
	nChunks := (setMiB + 63) / 64
	srv := startBenchServer(b, func(o *Options) { o.SendMode = SendFile })
	benchChunks(b, []*Server{srv}, 1, nChunks)
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	ctx := context.Background()
	data := make([]byte, benchChunkSize)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for h := uint64(1); h <= uint64(nChunks); h++ {
		if err := dc.Write(ctx, []string{srv.Addr()}, srv.Addr(), h, 1, 0, data, false); err != nil {
			b.Fatal(err)
		}
	}
	files := make([]*os.File, 0, nChunks)
	for h := uint64(1); h <= uint64(nChunks); h++ {
		r, err := srv.store.OpenRange(store.Handle(h), 0, benchChunkSize)
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(r.File.Name())
		r.Release()
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		// Warm the page cache (O_DIRECT writes bypassed it).
		if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, benchChunkSize)); err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
	}
	buf := make([]byte, benchChunkSize) // a whole chunk per Read: pipelined 16 MiB requests
	readSet := func(b *testing.B, addr string, rounds int) {
		for i := 0; i < rounds; i++ {
			for h := uint64(1); h <= uint64(nChunks); h++ {
				for off := int64(0); off < benchChunkSize; off += int64(len(buf)) {
					if _, err := dc.Read(ctx, addr, h, 1, off, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	total := int64(nChunks) * benchChunkSize
	b.Run("chunkserver-sendfile", func(b *testing.B) {
		b.SetBytes(total)
		readSet(b, srv.Addr(), b.N)
	})
	b.Run("chunkserver-copy", func(b *testing.B) {
		// Same server, switched to pread+write between runs (no reads in flight).
		srv.sendMode.Store(int32(SendCopy))
		defer srv.sendMode.Store(int32(SendFile))
		b.SetBytes(total)
		readSet(b, srv.Addr(), b.N)
	})
	for _, mode := range []string{"raw-sendfile", "raw-readwrite"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(total)
			rawServe(b, files, mode == "raw-sendfile", buf, b.N)
		})
	}
	// interleaved runs all four once per iteration, so that the noise of
	// a shared machine hits them alike, and reports each rate and the
	// chunkserver's best over the best baseline.
	b.Run("interleaved", func(b *testing.B) {
		var d [4]time.Duration
		for i := 0; i < b.N; i++ {
			for m := range d {
				t0 := time.Now()
				switch m {
				case 0, 1:
					srv.sendMode.Store(int32([]SendMode{SendFile, SendCopy}[m]))
					readSet(b, srv.Addr(), 1)
				case 2, 3:
					rawServe(b, files, m == 2, buf, 1)
				}
				d[m] += time.Since(t0)
			}
		}
		srv.sendMode.Store(int32(SendFile))
		rate := func(d time.Duration) float64 { return float64(total) * float64(b.N) / d.Seconds() / 1e6 }
		b.ReportMetric(rate(d[0]), "cs-sendfile-MB/s")
		b.ReportMetric(rate(d[1]), "cs-copy-MB/s")
		b.ReportMetric(rate(d[2]), "raw-sendfile-MB/s")
		b.ReportMetric(rate(d[3]), "raw-rw-MB/s")
		b.ReportMetric(max(rate(d[0]), rate(d[1]))/max(rate(d[2]), rate(d[3])), "ratio")
		b.SetBytes(4 * total)
	})
}

// rawServe is the machine baseline: one TCP connection over loopback; the
// sender pushes every file whole (sendfile or pread+write with a 1 MiB
// buffer), the receiver reads into buf and discards.
func rawServe(b *testing.B, files []*os.File, useSendfile bool, buf []byte, rounds int) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	done := make(chan error, 1)
	go func() {
		nc, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer nc.Close()
		tc := nc.(*net.TCPConn)
		rc, _ := tc.SyscallConn()
		cbuf := make([]byte, 1<<20)
		for i := 0; i < rounds; i++ {
			for _, f := range files {
				var off int64
				if useSendfile {
					n := int64(benchChunkSize)
					var serr error
					err = rc.Write(func(fd uintptr) bool {
						for n > 0 {
							w, err := unix.Sendfile(int(fd), int(f.Fd()), &off, int(n))
							if w > 0 {
								n -= int64(w)
							}
							if err == unix.EAGAIN {
								return false
							}
							if err != nil && err != unix.EINTR {
								serr = err
								return true
							}
						}
						return true
					})
					if err == nil {
						err = serr
					}
				} else {
					for off < benchChunkSize && err == nil {
						var r int
						r, err = f.ReadAt(cbuf, off)
						if r > 0 {
							_, err = tc.Write(cbuf[:r])
						}
						off += int64(r)
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	nc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	want := int64(rounds) * int64(len(files)) * benchChunkSize
	for got := int64(0); got < want; {
		n, err := nc.Read(buf)
		got += int64(n)
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChainWrite writes 4 MiB pieces through a chain of three
// chunkservers (pushed data, O_DIRECT on every replica). Its baseline
// (a raw relay through three processes writing with O_DIRECT) is measured
// by `gfs bench`; BenchmarkRawRelay below is an in-process version.
func BenchmarkChainWrite(b *testing.B) {
	servers := []*Server{startBenchServer(b, nil), startBenchServer(b, nil), startBenchServer(b, nil)}
	addrs := addrsOf(servers)
	const piece = 4 << 20
	// Fresh chunks, written once front to back (the GFS workload).
	nChunks := b.N*piece/benchChunkSize + 1
	benchChunks(b, servers, 1, nChunks)
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	data := make([]byte, piece)
	for i := range data {
		data[i] = byte(i * 31)
	}
	ctx := context.Background()
	b.SetBytes(piece)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pos := int64(i) * piece
		h := uint64(pos/benchChunkSize) + 1
		if err := dc.Write(ctx, addrs, addrs[0], h, 1, pos%benchChunkSize, data, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawRelay is the chain write's machine baseline measured in the
// same run: 4 MiB pieces relayed over loopback through three hops, each
// writing them to its own file with O_DIRECT before forwarding/acking the
// piece (store-and-forward per 256 KiB packet, like the chain).
func BenchmarkRawRelay(b *testing.B) {
	const piece = 4 << 20
	const packet = 256 << 10
	dir := b.TempDir()
	type hop struct {
		lis net.Listener
		f   *os.File
	}
	hops := make([]hop, 3)
	for i := range hops {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.OpenFile(fmt.Sprintf("%s/relay%d", dir, i), os.O_CREATE|os.O_RDWR|unix.O_DIRECT, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		hops[i] = hop{lis, f}
		defer lis.Close()
		defer f.Close()
	}
	var wg sync.WaitGroup
	for i := range hops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := hops[i].lis.Accept()
			if err != nil {
				return
			}
			defer in.Close()
			var out net.Conn
			if i+1 < len(hops) {
				if out, err = net.Dial("tcp", hops[i+1].lis.Addr().String()); err != nil {
					return
				}
				defer out.Close()
			}
			buf := store.GetBuffer(packet)
			defer store.PutBuffer(buf)
			var ack [1]byte
			var pos int64
			for {
				for got := 0; got < piece; got += packet {
					if _, err := io.ReadFull(in, buf.B); err != nil {
						return
					}
					if out != nil {
						if _, err := out.Write(buf.B); err != nil {
							return
						}
					}
					if _, err := hops[i].f.WriteAt(buf.B, pos); err != nil {
						return
					}
					pos += packet
				}
				if out != nil {
					if _, err := io.ReadFull(out, ack[:]); err != nil {
						return
					}
				}
				if _, err := in.Write(ack[:]); err != nil {
					return
				}
			}
		}()
	}
	nc, err := net.Dial("tcp", hops[0].lis.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, piece)
	var ack [1]byte
	b.SetBytes(piece)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc.Write(data); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, ack[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	nc.Close()
	for _, h := range hops {
		h.lis.Close()
	}
	wg.Wait()
}

// appendBench is what the clients of a record-append benchmark share: the
// replicas (the first is the primary), the chunk appends go to (a client
// moves it on at ErrChunkFull), the count of appends claimed
// (next.Add(1) <= b.N claims one) and the record.
type appendBench struct {
	addrs []string
	cur   atomic.Uint64
	next  atomic.Int64
	data  []byte
}

const benchRecord = 4 << 10

// runAppendBench starts 3 chunkservers with chunks for b.N records plus
// spare ones (records a full chunk leaves behind), runs body on clients
// goroutines, each with its own dataclient and latency list, and reports
// appends/s, appends per round and the p99 latency.
func runAppendBench(b *testing.B, clients, spare int, body func(ab *appendBench, dc *dataclient.Client, lat *[]time.Duration) error) {
	var rounds, muts atomic.Int64
	countRounds := func(o *Options) {
		o.testRoundHook = func(_ store.Handle, n int) { rounds.Add(1); muts.Add(int64(n)) }
	}
	servers := []*Server{startBenchServer(b, countRounds), startBenchServer(b, nil), startBenchServer(b, nil)}
	ab := &appendBench{addrs: addrsOf(servers), data: make([]byte, benchRecord)}
	benchChunks(b, servers, 1, (b.N+spare)*benchRecord/(benchChunkSize*9/10)+2)
	ab.cur.Store(1)
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dc := dataclient.New(dataclient.Options{})
			defer dc.Close()
			if err := body(ab, dc, &lat[c]); err != nil {
				errc <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
	if r := rounds.Load(); r > 0 {
		b.ReportMetric(float64(muts.Load())/float64(r), "appends/round")
	}
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.SetBytes(benchRecord)
}

// BenchmarkAppend16 record-appends 4 KiB records from 16 concurrent
// clients to 3 replicas, moving to the next chunk on ErrChunkFull; it
// reports appends/s and the p99 latency of one append.
func BenchmarkAppend16(b *testing.B) {
	ctx := context.Background()
	runAppendBench(b, 16, 0, func(ab *appendBench, dc *dataclient.Client, lat *[]time.Duration) error {
		for ab.next.Add(1) <= int64(b.N) {
			t0 := time.Now()
			for {
				h := ab.cur.Load()
				_, err := dc.Append(ctx, ab.addrs, ab.addrs[0], h, 1, ab.data, false)
				if errors.Is(err, dataclient.ErrChunkFull) {
					ab.cur.CompareAndSwap(h, h+1)
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			*lat = append(*lat, time.Since(t0))
		}
		return nil
	})
}

// BenchmarkAppend16Pipelined is BenchmarkAppend16 with each of the 16
// clients keeping a window of appends in flight on one AppendStream (the
// primary reads ahead of its answers, so one client's appends share
// rounds); a record that finds its chunk full is appended again on the
// next chunk. Latency is from Append to its answer.
func BenchmarkAppend16Pipelined(b *testing.B) {
	for _, window := range []int{4, 16} {
		b.Run(fmt.Sprintf("window%d", window), func(b *testing.B) { benchAppendPipelined(b, 16, window) })
	}
}

func benchAppendPipelined(b *testing.B, clients, window int) {
	ctx := context.Background()
	// Every client may leave a window of records on a full chunk.
	runAppendBench(b, clients, clients*window, func(ab *appendBench, dc *dataclient.Client, lat *[]time.Duration) error {
		type sent struct {
			call *dataclient.AppendCall
			h    uint64
			t0   time.Time
		}
		var st *dataclient.AppendStream
		var sh uint64
		var streams []*dataclient.AppendStream
		defer func() {
			for _, s := range streams {
				s.Close()
			}
		}()
		send := func(t0 time.Time) (sent, error) {
			if h := ab.cur.Load(); st == nil || sh != h {
				s, err := dc.NewAppendStream(ctx, ab.addrs, ab.addrs[0], h, 1, false, window)
				if err != nil {
					return sent{}, err
				}
				st, sh = s, h
				streams = append(streams, s)
			}
			return sent{st.Append(ab.data), sh, t0}, nil
		}
		var ring []sent
		retries := 0
		for {
			for len(ring) < window && (retries > 0 || ab.next.Add(1) <= int64(b.N)) {
				t0 := time.Now()
				if retries > 0 {
					retries--
				}
				sn, err := send(t0)
				if err != nil {
					return err
				}
				ring = append(ring, sn)
			}
			if len(ring) == 0 {
				return nil
			}
			sn := ring[0]
			ring = ring[1:]
			_, err := sn.call.Wait()
			switch {
			case errors.Is(err, dataclient.ErrChunkFull):
				ab.cur.CompareAndSwap(sn.h, sn.h+1)
				retries++
			case err != nil:
				return err
			default:
				*lat = append(*lat, time.Since(sn.t0))
			}
		}
	})
}

// BenchmarkCopyChunk re-replicates 1 MiB chunks one after another from one
// chunkserver to another (what a heartbeat copy command does) and reports
// chunks copied per second.
func BenchmarkCopyChunk(b *testing.B) {
	src, dst := startBenchServer(b, nil), startBenchServer(b, nil)
	benchChunks(b, []*Server{src}, 1, b.N)
	dc := dataclient.New(dataclient.Options{})
	defer dc.Close()
	data := make([]byte, 1<<20)
	ctx := context.Background()
	for h := uint64(1); h <= uint64(b.N); h++ {
		if err := dc.Write(ctx, []string{src.Addr()}, src.Addr(), h, 1, 0, data, false); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	start := time.Now()
	for h := uint64(1); h <= uint64(b.N); h++ {
		if err := dst.copyChunk(ctx, &controlpb.CopyCommand{Handle: h, Version: 1, Source: src.Addr()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "chunks/s")
}
