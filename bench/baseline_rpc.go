package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// rpcResponseBytes is the size of the rpc baseline's answer (a status and an
// offset, like a record append's reply).
const rpcResponseBytes = 16

// rpcMaxRequest caps a request the rpc baseline server accepts.
const rpcMaxRequest = 16 << 20

// measureRPC measures the rate of small request/response round trips over
// loopback TCP: clients connections, each sending requestBytes-byte requests
// (a 4-byte length prefix and payload) and waiting for a 16-byte answer, one
// at a time, for d. It is the ceiling for operations that need at least one
// round trip (record append, metadata calls).
func measureRPC(ctx context.Context, clients, requestBytes int, d time.Duration, prog *progress) (Baseline, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Baseline{}, fmt.Errorf("rpc baseline: %w", err)
	}
	var srvWG sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	srvWG.Add(1)
	go func() {
		defer srvWG.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			srvWG.Add(1)
			go func() {
				defer srvWG.Done()
				serveRPC(c)
				c.Close()
			}()
		}
	}()
	defer func() {
		lis.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		srvWG.Wait()
	}()

	c := &counters{}
	stop := prog.start("baseline rpc", c)
	defer stop()
	lats := make([]Latencies, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rpcClient(ctx, lis.Addr().String(), requestBytes, deadline, &lats[i], c)
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return Baseline{}, fmt.Errorf("rpc baseline: %w", err)
	}
	var all Latencies
	for i := range lats {
		all.Merge(&lats[i])
	}
	return Baseline{
		Name: BaselineRPC, Unit: UnitOpsPerS, Clients: clients, Runs: 1, Seconds: secs,
		Value: float64(c.ops.Load()) / secs,
		P50Ms: ms(all.Percentile(50)), P99Ms: ms(all.Percentile(99)), P999Ms: ms(all.Percentile(99.9)),
		Parts: map[string]float64{"request_bytes": float64(requestBytes)},
	}, nil
}

// serveRPC answers requests on c until it fails or closes.
func serveRPC(c net.Conn) {
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [4]byte
	var resp [rpcResponseBytes]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > rpcMaxRequest {
			return
		}
		if _, err := r.Discard(int(n)); err != nil {
			return
		}
		binary.LittleEndian.PutUint64(resp[:], uint64(n))
		if _, err := c.Write(resp[:]); err != nil {
			return
		}
	}
}

func rpcClient(ctx context.Context, addr string, requestBytes int, deadline time.Time, lat *Latencies, c *counters) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := make([]byte, 4+requestBytes)
	binary.LittleEndian.PutUint32(req, uint32(requestBytes))
	var resp [rpcResponseBytes]byte
	for {
		t0 := time.Now()
		if !t0.Before(deadline) || ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := conn.Write(req); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, resp[:]); err != nil {
			return err
		}
		lat.Add(time.Since(t0))
		c.ops.Add(1)
		c.bytes.Add(int64(requestBytes))
	}
}
