package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// serveFileBytes is the size of the cached file the serve baseline streams.
const serveFileBytes = 128 << 20

// serveCopyBuffer is the read()+write() variant's buffer: small enough to
// stay in the CPU cache between the read and the write.
const serveCopyBuffer = 256 << 10

// serve modes, the first byte a serve-baseline client sends.
const (
	serveModeSendfile  = 's'
	serveModeReadWrite = 'r'
)

// measureServe streams a cached file over loopback TCP to clients
// connections, for d with sendfile and then for d with read()+write(), and
// reports the faster as the ceiling for reads.
func measureServe(ctx context.Context, dir string, clients int, d time.Duration, prog *progress) (Baseline, error) {
	path := filepath.Join(dir, "serve-baseline")
	if err := writeCachedFile(path, serveFileBytes); err != nil {
		return Baseline{}, fmt.Errorf("serve baseline: %w", err)
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return Baseline{}, fmt.Errorf("serve baseline: %w", err)
	}
	defer f.Close()

	srv, err := startServeServer(f, serveFileBytes)
	if err != nil {
		return Baseline{}, fmt.Errorf("serve baseline: %w", err)
	}
	defer srv.close()

	b := Baseline{Name: BaselineServe, Unit: UnitMiBPerS, Clients: clients, Runs: 1, Parts: map[string]float64{}}
	for _, mode := range []struct {
		name string
		b    byte
	}{{"sendfile_mib_per_s", serveModeSendfile}, {"readwrite_mib_per_s", serveModeReadWrite}} {
		c := &counters{}
		stop := prog.start("baseline serve "+mode.name[:len(mode.name)-len("_mib_per_s")], c)
		mibs, secs, err := serveClients(ctx, srv.addr, mode.b, clients, d, c)
		stop()
		if err != nil {
			return Baseline{}, fmt.Errorf("serve baseline (%s): %w", mode.name, err)
		}
		b.Parts[mode.name] = mibs
		b.Seconds += secs
		b.Value = max(b.Value, mibs)
	}
	return b, nil
}

// writeCachedFile writes n bytes to path through the page cache and reads
// them once, so the file is cached when the baseline starts.
func writeCachedFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	NewPattern(1).Fill(1, buf, 0)
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), n-off)]); err != nil {
			f.Close()
			return err
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	if _, err := io.CopyBuffer(io.Discard, f, buf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveServer streams one file to every connection, over and over, until the
// client disconnects.
type serveServer struct {
	lis   net.Listener
	addr  string
	file  *os.File
	size  int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{} // guarded by mu; closed by close
}

func startServeServer(f *os.File, size int64) (*serveServer, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &serveServer{lis: lis, addr: lis.Addr().String(), file: f, size: size, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *serveServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.lis.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.stream(c.(*net.TCPConn))
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// stream serves one connection; errors end it (the client hung up).
func (s *serveServer) stream(c *net.TCPConn) {
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	buf := make([]byte, serveCopyBuffer)
	for {
		switch mode[0] {
		case serveModeSendfile:
			if _, err := sendFile(c, s.file, 0, s.size); err != nil {
				return
			}
		case serveModeReadWrite:
			for off := int64(0); off < s.size; {
				n, err := s.file.ReadAt(buf[:min(int64(len(buf)), s.size-off)], off)
				if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
					return
				}
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
				off += int64(n)
			}
		default:
			return
		}
	}
}

func (s *serveServer) close() {
	s.lis.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// serveClients runs clients readers against addr in mode for d and returns
// the aggregate MiB/s and the measured seconds.
func serveClients(ctx context.Context, addr string, mode byte, clients int, d time.Duration, c *counters) (mibs, secs float64, err error) {
	var wg sync.WaitGroup
	errs := make([]error, clients)
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = serveClient(ctx, addr, mode, deadline, c)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return float64(c.bytes.Load()) / (1 << 20) / elapsed.Seconds(), elapsed.Seconds(), nil
}

func serveClient(ctx context.Context, addr string, mode byte, deadline time.Time, c *counters) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{mode}); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := conn.Read(buf)
		c.bytes.Add(int64(n))
		if err != nil {
			return err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
