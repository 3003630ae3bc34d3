package mapreduce_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/mrlocal"
)

// firstLetters is a user's job: how many words start with each letter.
func firstLetters(mapreduce.Config) (*mapreduce.Job, error) {
	count := func(ctx context.Context, key []byte, values mapreduce.Values, emit mapreduce.Emit) error {
		n := 0
		for _, ok := values.Next(); ok; _, ok = values.Next() {
			n++
		}
		return emit(key, fmt.Appendf(nil, "%d", n))
	}
	return &mapreduce.Job{
		Map: func(ctx context.Context, rec mapreduce.Record, emit mapreduce.Emit) error {
			for _, w := range strings.Fields(string(rec.Data)) {
				if err := emit([]byte(strings.ToLower(w[:1])), nil); err != nil {
					return err
				}
			}
			return nil
		},
		Reduce: count,
	}, nil
}

// Example runs a user's job on an embedded cluster (a master, three
// chunkservers, a coordinator and two workers in this process) and prints
// its output. On a real cluster the same Apps go to mapreduce.Main, and
// the binary runs as coordinator, workers and submitter.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "mr-example-")
	defer os.RemoveAll(dir)
	c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "gfs")})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	mr, err := mrlocal.Start(ctx, c, mrlocal.Options{Dir: filepath.Join(dir, "mr"), Workers: 2,
		Apps: mapreduce.Apps{"first-letters": firstLetters}})
	if err != nil {
		panic(err)
	}
	defer mr.Close()

	fs, _ := client.Dial(ctx, c.MasterAddr(), client.Options{})
	defer fs.Close()
	fs.Create(ctx, "/poem.txt", client.CreateOptions{})
	f, _ := fs.Open(ctx, "/poem.txt")
	f.WriteAtContext(ctx, []byte("Tyger Tyger burning bright\nIn the forests of the night\n"), 0)

	jobs, _ := mr.Client()
	defer jobs.Close()
	id, err := jobs.Submit(ctx, mapreduce.JobRequest{App: "first-letters", Inputs: []string{"/poem.txt"}, Output: "/letters", Reduces: 1})
	if err != nil {
		panic(err)
	}
	if _, err := jobs.Wait(ctx, id, 100*time.Millisecond, nil); err != nil {
		panic(err)
	}
	out, _ := fs.Open(ctx, "/letters/part-r-00000")
	var b bytes.Buffer
	r := out.NewReader(ctx)
	io.Copy(&b, r)
	r.Close()
	fmt.Print(b.String())
	// Output:
	// b	2
	// f	1
	// i	1
	// n	1
	// o	1
	// t	4
}
