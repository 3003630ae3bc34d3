package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/gfs-go/gfs/client"
)

// cmdLs lists a directory (default /): one line per entry, or a JSON array.
func cmdLs(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("ls", "[PATH]", stdio)
	master := masterFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array of entries")
	if err := parseFlags(fs, args, 0, 1); err != nil {
		return err
	}
	path := "/"
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	entries, err := c.List(ctx, path)
	if err != nil {
		return err
	}
	if *asJSON {
		if entries == nil {
			entries = []client.FileInfo{}
		}
		return printJSON(stdio.Stdout, entries)
	}
	tw := tabwriter.NewWriter(stdio.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, e := range entries {
		kind, repl, name := "-", fmt.Sprint(e.Replication), e.Name
		if e.IsDir {
			kind, repl, name = "d", "-", e.Name+"/"
		}
		mtime := "-"
		if !e.ModTime.IsZero() {
			mtime = e.ModTime.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t %s\n", kind, repl, e.Length, mtime, name)
	}
	return tw.Flush()
}
