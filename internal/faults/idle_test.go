package faults

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gfs-go/gfs/dataplane/wire"
)

// Scenario 14 (restart): bad input and idle connections against a real
// chunkserver (issue 15, defect 7: one WARN line per malformed connection,
// 8,000-63,000 lines in a minute or two from one host; connections idle
// after a complete request never closed, 1,335 still open after 35 s of a
// slowloris). One host opens 2,000 connections of garbage and 300 that send
// one complete request and then nothing; meanwhile and after, a client
// writes and reads across pauses longer than the idle timeout.
func TestBadInputAndIdleConnections(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 1, replication: 1, csArgs: []string{"-idle-timeout", "300ms"}})
	cs, addr := c.cs[0], c.csAddr[0]
	cl := c.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := countLog(cs, "closing data connection")

	start := time.Now()
	const garbage = 2000
	for i := 0; i < garbage; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = nc.Write([]byte("GARBAGE GARBAGE GARBAGE GARBAGE!"))
		_ = nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadAll(nc); err != nil {
			t.Fatalf("garbage connection %d not closed by the chunkserver: %v", i, err)
		}
		nc.Close()
	}
	flood := time.Since(start)

	// A slowloris: one complete request each, then silence.
	const idle = 300
	var conns []net.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	req := wire.Header{Op: wire.OpLength, RequestID: 1}
	frame := wire.AppendRequest(nil, &req, nil, &wire.LengthRequest{Handle: 0xdead})
	for i := 0; i < idle; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		var hb [wire.HeaderSize]byte
		if _, err := io.ReadFull(nc, hb[:]); err != nil {
			t.Fatalf("idle connection %d: no answer to its request: %v", i, err)
		}
	}
	// Meanwhile a real client writes, pauses past the idle timeout, goes on.
	path := "/idle/f"
	data := pattern(14, 3*chunkSize/2)
	if err := writeFile(ctx, cl, path, data[:chunkSize/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	f, err := cl.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAtContext(ctx, data[chunkSize/2:], chunkSize/2); err != nil {
		t.Fatalf("write after the client's connections went idle: %v", err)
	}
	time.Sleep(time.Second)
	checkFile(t, cl, path, data)

	closedAll, ok := eventually(30*time.Second, func() bool {
		for _, nc := range conns {
			_ = nc.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := nc.Read(make([]byte, 1))
			if ne, isNE := err.(net.Error); isNE && ne.Timeout() {
				return false // still open
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("connections idle after a complete request still open %v after an idle timeout of 300ms", closedAll)
	}
	lines := countLog(cs, "closing data connection") - before
	if max := int(flood/time.Second) + 2; lines < 1 || lines > max {
		t.Fatalf("%d warning lines for %d garbage connections in %v (want 1..%d)", lines, garbage, flood, max)
	}
	t.Logf("%d garbage connections in %v: %d warning lines; %d idle connections all closed %v after the last; client writes across idle pauses intact",
		garbage, flood.Round(time.Millisecond), lines, idle, closedAll.Round(time.Millisecond))
}
