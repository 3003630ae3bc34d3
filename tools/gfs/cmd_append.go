package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gfs-go/gfs/client"
)

// cmdAppend record-appends stdin as one record to REMOTE (created when
// missing, with its parents) and prints the record's file offset.
func cmdAppend(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("append", "REMOTE", stdio)
	master := masterFlag(fs)
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	remote := fs.Arg(0)
	rec, err := io.ReadAll(io.LimitReader(stdio.Stdin, client.MaxRecordPayload+1))
	if err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Create(ctx, remote, client.CreateOptions{Parents: true}); err != nil && !errors.Is(err, client.ErrExists) {
		return err
	}
	off, err := c.RecordAppend(ctx, remote, rec)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdio.Stdout, off)
	return nil
}
