package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gfs-go/gfs/client"
)

// cmdAppend record-appends stdin as one record to REMOTE (created when
// missing, with its parents) and prints the record's file offset; with
// -lines, every line of stdin is a record, appended pipelined, and it
// prints how many.
func cmdAppend(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("append", "REMOTE", stdio)
	master := masterFlag(fs)
	lines := fs.Bool("lines", false, "append every line of stdin (without its newline) as its own record, many in flight; print the number of records")
	window := fs.Int("window", 16, "with -lines: records in flight")
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	if *window < 1 {
		return fmt.Errorf("-window %d: want at least 1", *window)
	}
	remote := fs.Arg(0)
	var rec []byte
	if !*lines {
		var err error
		if rec, err = io.ReadAll(io.LimitReader(stdio.Stdin, client.MaxRecordPayload+1)); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(ctx, remote, client.CreateOptions{Parents: true}); err != nil && !errors.Is(err, client.ErrExists) {
		return err
	}
	if *lines {
		return appendLines(ctx, c, remote, *window, stdio)
	}
	off, err := c.RecordAppend(ctx, remote, rec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, off)
	return nil
}

// appendLines appends every line of stdin as a record through a
// RecordWriter and prints the count once all are acknowledged.
func appendLines(ctx context.Context, c *client.Client, remote string, window int, stdio IO) error {
	w, err := c.NewRecordWriter(ctx, remote, window)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(stdio.Stdin)
	sc.Buffer(make([]byte, 64<<10), client.MaxRecordPayload+1)
	n := 0
	for sc.Scan() {
		if err := w.Append(sc.Bytes()); err != nil {
			w.Close()
			return fmt.Errorf("line %d: %w", n+1, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		w.Close()
		return fmt.Errorf("read stdin after %d lines: %w", n, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%d lines sent, not all acknowledged: %w", n, err)
	}
	fmt.Fprintln(stdio.Stdout, n)
	return nil
}
