package main

import (
	"context"
	"errors"

	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/apps"
)

// cmdMR runs the MapReduce subcommands (gfs mr coordinator|worker|run|
// status) with the built-in apps; a user's own binary gets the same
// commands with its apps from mapreduce.Main.
func cmdMR(ctx context.Context, args []string, stdio IO) error {
	err := mapreduce.Command(ctx, args, mapreduce.CommandIO{Stdout: stdio.Stdout, Stderr: stdio.Stderr, Getenv: stdio.Getenv}, apps.All())
	var ue *mapreduce.UsageError
	if errors.As(err, &ue) {
		code := mapreduce.ExitCode(err, stdio.Stderr, "mr")
		return &ExitError{Code: code}
	}
	return err
}
