package main

import (
	"context"
	"errors"
)

// cmdBench runs the benchmark suite. Owned by the bench work (issue 6).
func cmdBench(ctx context.Context, args []string, stdio IO) error {
	return errors.New("the benchmark suite is not built yet")
}

// cmdBenchRelayNode is one hop of the raw relay baseline (a child process).
func cmdBenchRelayNode(ctx context.Context, args []string, stdio IO) error {
	return errors.New("the relay baseline is not built yet")
}
