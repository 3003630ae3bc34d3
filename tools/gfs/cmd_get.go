package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// cmdGet copies a GFS file to a local file (or stdout for "-"). The local
// file appears complete or not at all: data goes to a temporary file that
// is renamed into place at the end.
func cmdGet(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("get", "REMOTE LOCAL", stdio)
	master := masterFlag(fs)
	if err := parseFlags(fs, args, 2, 2); err != nil {
		return err
	}
	remote, local := fs.Arg(0), fs.Arg(1)
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := c.Open(ctx, remote)
	if err != nil {
		return err
	}
	if local == "-" {
		r := f.NewReader(ctx)
		defer r.Close()
		_, err := r.WriteTo(stdio.Stdout)
		return err
	}
	total, err := f.Length(ctx)
	if err != nil {
		total = -1 // only for the progress bar
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".gfs-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	bar := newProgress(stdio, "get "+remote, total)
	r := f.NewReader(ctx)
	n, err := io.Copy(tmp, &progressReader{r: r, bar: bar})
	bar.finish()
	r.Close()
	if err == nil && total >= 0 && n < total {
		// A replica of the last chunk ended early (it missed a mutation):
		// refuse a silently truncated copy.
		err = fmt.Errorf("read %d bytes, the file has %d: a replica is behind; retry", n, total)
	}
	if err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", remote, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), local)
}

// progressReader counts bytes into a progress bar.
type progressReader struct {
	r   io.Reader
	bar *progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.bar.add(int64(n))
	return n, err
}
