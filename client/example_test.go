package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
)

// exampleCluster starts an in-process cluster in a temporary directory; the
// returned function stops it and removes the directory.
func exampleCluster() (string, func()) {
	dir, err := os.MkdirTemp("", "gfs-example-")
	if err != nil {
		log.Fatal(err)
	}
	// Short leases: a master that just started grants its first lease one
	// lease period after starting.
	cl, err := cluster.Start(context.Background(), cluster.Options{
		Dir: dir, Chunkservers: 3, ChunkSize: 1 << 20,
		LeaseTTL: 2 * time.Second, HeartbeatInterval: 100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	return cl.MasterAddr(), func() {
		cl.Close()
		os.RemoveAll(dir)
	}
}

// Writing a file and reading it back, whole and streamed.
func Example() {
	masterAddr, stop := exampleCluster()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, masterAddr, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	if err := c.Create(ctx, "/docs/hello.txt", client.CreateOptions{Parents: true}); err != nil {
		log.Fatal(err)
	}
	f, err := c.Open(ctx, "/docs/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := f.WriteAtContext(ctx, []byte("hello, gfs"), 0); err != nil {
		log.Fatal(err)
	}

	buf := make([]byte, 5)
	if _, err := f.ReadAtContext(ctx, buf, 7); err != nil && !errors.Is(err, io.EOF) {
		log.Fatal(err)
	}
	fmt.Printf("at 7: %s\n", buf[:3])

	r := f.NewReader(ctx)
	defer r.Close()
	var sb strings.Builder
	if _, err := io.Copy(&sb, r); err != nil {
		log.Fatal(err)
	}
	fmt.Println("whole:", sb.String())

	if _, err := c.Stat(ctx, "/docs/missing"); errors.Is(err, client.ErrNotFound) {
		fmt.Println("missing: not found")
	}
	// Output:
	// at 7: gfs
	// whole: hello, gfs
	// missing: not found
}

// Appending records concurrently-safe and reading each back exactly once.
func ExampleClient_RecordAppend() {
	masterAddr, stop := exampleCluster()
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, masterAddr, client.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Create(ctx, "/events", client.CreateOptions{}); err != nil {
		log.Fatal(err)
	}
	for _, ev := range []string{"start", "tick", "stop"} {
		if _, err := c.RecordAppend(ctx, "/events", []byte(ev)); err != nil {
			log.Fatal(err)
		}
	}

	rr := c.NewRecordReader(ctx, "/events")
	defer rr.Close()
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(rec.Data))
	}
	// Output:
	// start
	// tick
	// stop
}
