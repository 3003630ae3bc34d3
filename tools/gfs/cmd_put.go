package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gfs-go/gfs/client"
)

// putBufferBytes is how much of the local file one WriteAt call carries
// (the client splits it into pieces written in parallel).
const putBufferBytes = 32 << 20

// cmdPut copies a local file (or stdin for "-") into a new GFS file.
func cmdPut(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("put", "LOCAL REMOTE", stdio)
	master := masterFlag(fs)
	replication := fs.Int("replication", 0, "replica count of the new file (0 = master default)")
	parents := fs.Bool("p", false, "create missing parent directories")
	force := fs.Bool("f", false, "replace REMOTE if it exists")
	bufSize := int64(putBufferBytes)
	fs.Var(sizeFlag{&bufSize}, "buffer", "bytes per write call; two are in flight (default 32MiB)")
	if err := parseFlags(fs, args, 2, 2); err != nil {
		return err
	}
	if bufSize <= 0 || bufSize > 1<<30 {
		return fmt.Errorf("-buffer %d: want 1 B to 1 GiB", bufSize)
	}
	local, remote := fs.Arg(0), fs.Arg(1)
	var src io.Reader = stdio.Stdin
	total := int64(-1)
	if local != "-" {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", local)
		}
		src, total = f, st.Size()
	}
	c, err := dial(ctx, *master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	copts := client.CreateOptions{Replication: *replication, Parents: *parents}
	err = c.Create(ctx, remote, copts)
	if errors.Is(err, client.ErrExists) && *force {
		if err = c.Delete(ctx, remote, false); err == nil {
			err = c.Create(ctx, remote, copts)
		}
	}
	if err != nil {
		return err
	}
	f, err := c.Open(ctx, remote)
	if err != nil {
		return err
	}
	bar := newProgress(stdio, "put "+remote, total)
	n, err := copyToFile(ctx, f, src, int(bufSize), bar)
	bar.finish()
	if err != nil {
		return fmt.Errorf("%s after %d bytes: %w", remote, n, err)
	}
	return nil
}

// copyToFile writes everything src yields into f from offset 0, reading the
// next buffer while the previous one is being written.
func copyToFile(ctx context.Context, f *client.File, src io.Reader, bufSize int, bar *progress) (int64, error) {
	bufs := [2][]byte{make([]byte, bufSize), make([]byte, bufSize)}
	var off int64
	var pending chan error
	var pendingN int
	wait := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		if err == nil {
			off += int64(pendingN)
			bar.add(int64(pendingN))
		}
		return err
	}
	for i := 0; ; i++ {
		buf := bufs[i%2]
		n, rerr := io.ReadFull(src, buf)
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			rerr = nil
		} else if rerr != nil {
			_ = wait()
			return off, fmt.Errorf("read local: %w", rerr)
		}
		if err := wait(); err != nil {
			return off, err
		}
		if n == 0 {
			return off, nil
		}
		pending = make(chan error, 1)
		pendingN = n
		go func(b []byte, at int64) {
			_, err := f.WriteAtContext(ctx, b, at)
			pending <- err
		}(buf[:n], off)
		if n < len(buf) {
			err := wait()
			return off, err
		}
	}
}
