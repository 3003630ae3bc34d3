package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/gfs-go/gfs/client"
)

// statOutput is what stat -chunks -json prints: the file's info with its
// chunks array (the command-line contract names the chunk fields) in place
// of the chunk count.
type statOutput struct {
	client.FileInfo
	Chunks []client.ChunkLocation `json:"chunks"`
}

// cmdStat describes a file or directory; -chunks adds each chunk's index,
// handle, version, replicas and primary.
func cmdStat(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("stat", "PATH", stdio)
	master := masterFlag(fs)
	chunks := fs.Bool("chunks", false, "list the file's chunks with their replicas")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	path := fs.Arg(0)
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	fi, err := c.Stat(ctx, path)
	if err != nil {
		return err
	}
	out := statOutput{FileInfo: fi}
	if !fi.IsDir {
		// The master's length may lag; ask the last chunk's replicas.
		if f, err := c.Open(ctx, path); err == nil {
			if n, err := f.Length(ctx); err == nil {
				out.Length = n
			}
		}
		if *chunks {
			locs, err := c.Chunks(ctx, path)
			if err != nil {
				return err
			}
			out.Chunks = locs
			if out.Chunks == nil {
				out.Chunks = []client.ChunkLocation{}
			}
		}
	}
	if *asJSON {
		if *chunks && !fi.IsDir {
			// The contract's "chunks" array replaces the chunk count.
			return printJSON(stdio.Stdout, out)
		}
		return printJSON(stdio.Stdout, out.FileInfo)
	}
	w := stdio.Stdout
	kind := "file"
	if fi.IsDir {
		kind = "directory"
	}
	fmt.Fprintf(w, "path:        %s\ntype:        %s\n", fi.Path, kind)
	if !fi.IsDir {
		fmt.Fprintf(w, "length:      %d (%s)\nchunks:      %d\nreplication: %d\n", out.Length, formatSize(out.Length), fi.Chunks, fi.Replication)
	}
	if !fi.ModTime.IsZero() {
		fmt.Fprintf(w, "modified:    %s\n", fi.ModTime.Local().Format("2006-01-02 15:04:05"))
	}
	for _, l := range out.Chunks {
		primary := l.Primary
		if primary == "" {
			primary = "-"
		}
		fmt.Fprintf(w, "chunk %d: handle %016x version %d length %d primary %s replicas %s\n",
			l.Index, l.Handle, l.Version, l.Length, primary, strings.Join(l.Replicas, ","))
	}
	return nil
}
