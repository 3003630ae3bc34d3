package client

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/gfs-go/gfs/control/controlpb"
)

// FileInfo describes a file or directory.
type FileInfo struct {
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	IsDir       bool      `json:"is_dir"`
	Length      int64     `json:"length"` // master's best known length; File.Length refines it
	Chunks      int64     `json:"chunks"`
	Replication int       `json:"replication"` // target replica count
	ModTime     time.Time `json:"mtime"`
}

func fileInfoFrom(pb *controlpb.FileInfo) FileInfo {
	fi := FileInfo{
		Path:        pb.GetPath(),
		Name:        pb.GetName(),
		IsDir:       pb.GetIsDir(),
		Length:      pb.GetLength(),
		Chunks:      pb.GetChunks(),
		Replication: int(pb.GetReplication()),
	}
	if ms := pb.GetMtimeUnixMs(); ms != 0 {
		fi.ModTime = time.UnixMilli(ms).UTC()
	}
	return fi
}

// CreateOptions tunes Create. The zero value creates a file with the
// master's default replication in an existing directory.
type CreateOptions struct {
	// Replication is the target replica count; 0 = the master's default.
	Replication int
	// Parents creates missing parent directories.
	Parents bool
}

// Create creates an empty file. It fails with ErrExists when path exists,
// ErrNotFound when the parent is missing (unless opts.Parents) and ErrNotDir
// when a parent is a file.
func (c *Client) Create(ctx context.Context, path string, opts CreateOptions) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	if opts.Replication < 0 || opts.Replication > 255 {
		return fmt.Errorf("create %s: %w: replication %d", path, ErrBadArgument, opts.Replication)
	}
	// One request id for the call and all its retries: a retry after the
	// master applied the create but died before answering gets "created",
	// not "exists".
	req := &controlpb.CreateRequest{Path: path, Replication: uint32(opts.Replication), Parents: opts.Parents, RequestId: newRequestID()}
	err := c.callMaster(ctx, namespaceMutation, func(ctx context.Context) error {
		_, err := c.master.Create(ctx, req)
		return err
	})
	return controlError("create", path, err)
}

// Mkdir creates a directory, and with parents any missing parents (an
// existing directory is then not an error).
func (c *Client) Mkdir(ctx context.Context, path string, parents bool) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	req := &controlpb.MkdirRequest{Path: path, Parents: parents, RequestId: newRequestID()}
	err := c.callMaster(ctx, namespaceMutation, func(ctx context.Context) error {
		_, err := c.master.Mkdir(ctx, req)
		return err
	})
	return controlError("mkdir", path, err)
}

// Delete removes a file or an empty directory; with recursive, a directory
// and everything below it. Space is reclaimed lazily by the master.
func (c *Client) Delete(ctx context.Context, path string, recursive bool) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	req := &controlpb.DeleteRequest{Path: path, Recursive: recursive, RequestId: newRequestID()}
	err := c.callMaster(ctx, namespaceMutation, func(ctx context.Context) error {
		_, err := c.master.Delete(ctx, req)
		return err
	})
	c.forget(path)
	return controlError("delete", path, err)
}

// Rename moves src to dst atomically. dst must not exist.
func (c *Client) Rename(ctx context.Context, src, dst string) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	req := &controlpb.RenameRequest{Src: src, Dst: dst, RequestId: newRequestID()}
	err := c.callMaster(ctx, namespaceMutation, func(ctx context.Context) error {
		_, err := c.master.Rename(ctx, req)
		return err
	})
	c.forget(src)
	c.forget(dst)
	return controlError("rename", src, err)
}

// List returns the entries of directory path in name order (all pages).
// Listing a file returns that file alone.
func (c *Client) List(ctx context.Context, path string) ([]FileInfo, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	var out []FileInfo
	after := ""
	for {
		var resp *controlpb.ListResponse
		err := c.callMaster(ctx, idempotent, func(ctx context.Context) (err error) {
			resp, err = c.master.List(ctx, &controlpb.ListRequest{Path: path, StartAfter: after})
			return err
		})
		if err != nil {
			return nil, controlError("list", path, err)
		}
		for _, e := range resp.GetEntries() {
			out = append(out, fileInfoFrom(e))
		}
		if !resp.GetTruncated() || len(resp.GetEntries()) == 0 {
			return out, nil
		}
		after = resp.GetEntries()[len(resp.GetEntries())-1].GetName()
	}
}

// Stat describes path as the master knows it. For a file, Length is the
// master's best known length, which may lag concurrent writes; File.Length
// asks the last chunk's replicas.
func (c *Client) Stat(ctx context.Context, path string) (FileInfo, error) {
	if err := c.checkOpen(); err != nil {
		return FileInfo{}, err
	}
	var resp *controlpb.StatResponse
	err := c.callMaster(ctx, idempotent, func(ctx context.Context) (err error) {
		resp, err = c.master.Stat(ctx, &controlpb.StatRequest{Path: path})
		return err
	})
	if err != nil {
		return FileInfo{}, controlError("stat", path, err)
	}
	return fileInfoFrom(resp.GetInfo()), nil
}

// newRequestID names one logical namespace call; its retries reuse it so
// the master answers them with the first answer (128 random bits: ids
// from independent clients never collide in practice).
func newRequestID() []byte {
	id := make([]byte, 16)
	rand.Read(id) // never fails (crypto/rand)
	return id
}
