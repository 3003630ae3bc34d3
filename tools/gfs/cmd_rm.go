package main

import "context"

// cmdRm deletes a file or an empty directory (-r: a whole tree).
func cmdRm(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("rm", "PATH", stdio)
	master := masterFlag(fs)
	recursive := fs.Bool("r", false, "delete a directory and everything below it")
	if err := parseFlags(fs, args, 1, 1); err != nil {
		return err
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Delete(ctx, fs.Arg(0), *recursive)
}
