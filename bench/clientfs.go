package bench

import (
	"context"
	"errors"
	"io"

	"github.com/gfs-go/gfs/client"
)

// recordFramingBytes is what the client's record framing adds to a record.
const recordFramingBytes = client.RecordHeaderSize

// ConnectClient returns an Options.Connect that dials package client with
// opts and creates files with replication replicas (0 = master's default).
func ConnectClient(opts client.Options, replication int) func(ctx context.Context, masterAddr string) (FS, error) {
	return func(ctx context.Context, masterAddr string) (FS, error) {
		c, err := client.Dial(ctx, masterAddr, opts)
		if err != nil {
			return nil, err
		}
		return clientFS{c: c, create: client.CreateOptions{Replication: replication}}, nil
	}
}

// clientFS adapts a client.Client to FS.
type clientFS struct {
	c      *client.Client
	create client.CreateOptions
}

func (f clientFS) Close() error { return f.c.Close() }

func (f clientFS) Create(ctx context.Context, path string) error {
	return f.c.Create(ctx, path, f.create)
}

func (f clientFS) Mkdir(ctx context.Context, path string) error {
	err := f.c.Mkdir(ctx, path, true)
	if errors.Is(err, client.ErrExists) {
		return nil
	}
	return err
}

func (f clientFS) Open(ctx context.Context, path string) (File, error) {
	file, err := f.c.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	return clientFile{f: file}, nil
}

func (f clientFS) RecordAppend(ctx context.Context, path string, rec []byte) error {
	_, err := f.c.RecordAppend(ctx, path, rec)
	return err
}

func (f clientFS) NewRecordWriter(ctx context.Context, path string, window int) (RecordWriter, error) {
	return f.c.NewRecordWriter(ctx, path, window)
}

func (f clientFS) ReadRecords(ctx context.Context, path string, fn func([]byte) error) (err error) {
	rr := f.c.NewRecordReader(ctx, path)
	defer func() { err = errors.Join(err, rr.Close()) }()
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(rec.Data); err != nil {
			return err
		}
	}
}

func (f clientFS) Stat(ctx context.Context, path string) (int64, error) {
	fi, err := f.c.Stat(ctx, path)
	return fi.Length, err
}

func (f clientFS) List(ctx context.Context, dir string) ([]string, error) {
	fis, err := f.c.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(fis))
	for i, fi := range fis {
		names[i] = fi.Name
	}
	return names, nil
}

func (f clientFS) Delete(ctx context.Context, path string) error {
	return f.c.Delete(ctx, path, true)
}

// clientFile adapts a client.File to File.
type clientFile struct{ f *client.File }

func (f clientFile) Close() error { return nil }

func (f clientFile) WriteAt(ctx context.Context, p []byte, off int64) error {
	_, err := f.f.WriteAtContext(ctx, p, off)
	return err
}

func (f clientFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return f.f.ReadAtContext(ctx, p, off)
}

func (f clientFile) NewReader(ctx context.Context) io.ReadCloser { return f.f.NewReader(ctx) }

func (f clientFile) Length(ctx context.Context) (int64, error) { return f.f.Length(ctx) }
