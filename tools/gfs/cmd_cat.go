package main

import (
	"bufio"
	"context"
	"errors"
	"io"
)

// cmdCat writes a GFS file to stdout; with -records, each acknowledged
// record once, in file order, each followed by a newline.
func cmdCat(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("cat", "REMOTE", stdio)
	master := masterFlag(fs)
	records := fs.Bool("records", false, "print the file's records (written with append), one per line")
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	if !*records {
		f, err := c.Open(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		r := f.NewReader(ctx)
		defer r.Close()
		_, err = r.WriteTo(stdio.Stdout)
		return err
	}
	rr := c.NewRecordReader(ctx, fs.Arg(0))
	defer rr.Close()
	w := bufio.NewWriterSize(stdio.Stdout, 1<<20)
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return w.Flush()
		}
		if err != nil {
			w.Flush()
			return err
		}
		w.Write(rec.Data)
		if err := w.WriteByte('\n'); err != nil {
			return err
		}
	}
}
