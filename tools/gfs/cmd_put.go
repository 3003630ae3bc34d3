package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/gfs-go/gfs/client"
)

// putBufferBytes is how much of the local file one WriteAt call carries
// (the client splits it into pieces written in parallel).
const putBufferBytes = 32 << 20

// cmdPut copies a local file (or stdin for "-") into a new GFS file. The
// file is written under a hidden temporary name and renamed into place when
// complete; a failed put removes it.
func cmdPut(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("put", "LOCAL REMOTE", stdio)
	master := masterFlag(fs)
	replication := fs.Int("replication", 0, "replica count of the new file (0 = master default)")
	parents := fs.Bool("p", false, "create missing parent directories")
	force := fs.Bool("f", false, "replace REMOTE if it exists")
	bufSize := int64(putBufferBytes)
	fs.Var(sizeFlag{&bufSize}, "buffer", "`SIZE` of each write call; two are in flight")
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
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	// Write under a temporary name beside REMOTE and rename it into place
	// at the end: REMOTE appears complete or not at all.
	if fi, err := c.Stat(ctx, remote); err == nil {
		if fi.IsDir {
			return fmt.Errorf("%s is a directory", remote)
		}
		if !*force {
			return fmt.Errorf("%s: %w (use -f to replace it)", remote, client.ErrExists)
		}
	} else if !errors.Is(err, client.ErrNotFound) {
		return err
	}
	tmp := tempName(remote)
	if err := c.Create(ctx, tmp, client.CreateOptions{Replication: *replication, Parents: *parents}); err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			// Best effort, even after ctx ended (SIGINT).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			c.Delete(dctx, tmp, false)
			cancel()
		}
	}()
	f, err := c.Open(ctx, tmp)
	if err != nil {
		return err
	}
	bar := newProgress(stdio, "put "+remote, total)
	n, err := copyToFile(ctx, f, src, int(bufSize), bar)
	bar.finish()
	if err != nil {
		return fmt.Errorf("%s after %d bytes: %w", remote, n, err)
	}
	if *force {
		if err := c.Delete(ctx, remote, false); err != nil && !errors.Is(err, client.ErrNotFound) {
			return err
		}
	}
	if err := c.Rename(ctx, tmp, remote); err != nil {
		return err
	}
	committed = true
	return nil
}

// tempName returns a hidden name beside path for an upload in progress:
// "/d/.f.put-<random>".
func tempName(p string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(p), "."+path.Base(p)+".put-"+hex.EncodeToString(b[:]))
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
