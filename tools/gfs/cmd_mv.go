package main

import "context"

// cmdMv renames SRC to DST.
func cmdMv(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("mv", "SRC DST", stdio)
	master := masterFlag(fs)
	if err := parseFlags(fs, args, 2, 2); err != nil {
		return err
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Rename(ctx, fs.Arg(0), fs.Arg(1))
}
