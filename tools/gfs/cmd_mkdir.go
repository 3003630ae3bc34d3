package main

import "context"

// cmdMkdir creates a directory.
func cmdMkdir(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("mkdir", "PATH", stdio)
	master := masterFlag(fs)
	parents := fs.Bool("p", false, "create missing parents; an existing directory is not an error")
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Mkdir(ctx, fs.Arg(0), *parents)
}
