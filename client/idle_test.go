package client_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gfs-go/gfs/client"
)

// TestIdleConnectionsClosedByChunkservers: chunkservers close data
// connections idle past their IdleTimeout (issue 15, defect 7); a client
// whose pooled connections and whose RecordWriter's append stream sat idle
// longer than that carries on without an error, and every record and byte
// reads back once.
func TestIdleConnectionsClosedByChunkservers(t *testing.T) {
	opts := clusterOptions(t)
	opts.Chunkserver.IdleTimeout = 200 * time.Millisecond
	_, c := startCluster(t, opts)
	ctx := testCtx(t)
	if err := c.Create(ctx, "/idle/log", client.CreateOptions{Parents: true}); err != nil {
		t.Fatal(err)
	}
	rw, err := c.NewRecordWriter(ctx, "/idle/log", 8)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(5, 3*testChunkSize/2)
	if err := c.Create(ctx, "/idle/f", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := c.Open(ctx, "/idle/f")
	if err != nil {
		t.Fatal(err)
	}
	const rounds, perRound = 4, 20
	piece := len(data) / rounds
	for r := 0; r < rounds; r++ {
		for i := 0; i < perRound; i++ {
			if err := rw.Append([]byte(fmt.Sprintf("round%d-rec%d", r, i))); err != nil {
				t.Fatalf("round %d: append after an idle pause: %v", r, err)
			}
		}
		if err := rw.Flush(); err != nil {
			t.Fatalf("round %d: flush after an idle pause: %v", r, err)
		}
		if _, err := f.WriteAtContext(ctx, data[r*piece:(r+1)*piece], int64(r*piece)); err != nil {
			t.Fatalf("round %d: write after an idle pause: %v", r, err)
		}
		time.Sleep(500 * time.Millisecond) // every connection idle past the timeout
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	seen := readRecords(t, c, "/idle/log")
	for r := 0; r < rounds; r++ {
		for i := 0; i < perRound; i++ {
			if n := seen[fmt.Sprintf("round%d-rec%d", r, i)]; n != 1 {
				t.Fatalf("record round%d-rec%d read %d times", r, i, n)
			}
		}
	}
	got := make([]byte, rounds*piece)
	if n, err := f.ReadAtContext(ctx, got, 0); n != len(got) || err != nil {
		t.Fatalf("read back: %d, %v", n, err)
	}
	if string(got) != string(data[:rounds*piece]) {
		t.Fatal("file read back differs")
	}
}
