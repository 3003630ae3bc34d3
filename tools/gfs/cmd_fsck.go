package main

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/gfs-go/gfs/client"
)

// fsckProblem is one unhealthy chunk.
type fsckProblem struct {
	Path     string   `json:"path"`
	Index    int64    `json:"index"`
	Handle   uint64   `json:"handle"`
	Problem  string   `json:"problem"` // "missing", "corrupt", "divergent" or "under-replicated"
	Replicas []string `json:"replicas"`
	Target   int      `json:"target"`
	// Corrupt: replicas failing verification (-verify) or marked corrupt
	// by the master (reported bad and kept as the chunk's last live copy:
	// its intact bytes still read, but it is no good copy).
	Corrupt []string `json:"corrupt,omitempty"`
	// Divergent: replicas whose bytes differ from the chunk's good copy
	// at the same version (-verify); reported to the master, which copies
	// the good one over them.
	Divergent []string `json:"divergent,omitempty"`
}

// fsckReport is what fsck -json prints.
type fsckReport struct {
	Path            string        `json:"path"`
	Files           int           `json:"files"`
	Directories     int           `json:"directories"`
	Chunks          int           `json:"chunks"`
	Bytes           int64         `json:"bytes"`
	Missing         int           `json:"missing"`
	UnderReplicated int           `json:"under_replicated"`
	Corrupt         int           `json:"corrupt"`
	Divergent       int           `json:"divergent"`
	Healthy         bool          `json:"healthy"`
	Problems        []fsckProblem `json:"problems"`
}

// fsck's exit codes (docs/operators.md): the worst problem found decides.
const (
	fsckExitMissing   = 1 // a chunk has no readable replica: data unavailable or lost
	fsckExitCorrupt   = 3 // a replica is corrupt or diverges (a good copy is left, or only a copy kept although bad)
	fsckExitUnderRepl = 4 // a chunk has fewer good replicas than its target
)

// cmdFsck checks the chunks of every file under PATH (default /): missing
// (no live replica), under-replicated, corrupt (a replica the master marks
// bad: reported so while it was the last live copy, kept since) and, with
// -verify, corrupt replicas
// (every replica read in full, checksums verified, failures reported to the
// master) and divergent ones (replicas at one version whose bytes differ:
// the ones differing from the good copy are reported to the master). It
// exits 0 when healthy, else with the code of the worst problem (1 missing,
// 3 corrupt or divergent, 4 under-replicated; 2 is a usage error).
func cmdFsck(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("fsck", "[PATH]", stdio)
	master := masterFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON report")
	verify := fs.Bool("verify", false, "read every replica in full and verify its checksums")
	if err := parseFlags(fs, args, 0, 1); err != nil {
		return err
	}
	root := "/"
	if fs.NArg() == 1 {
		root = fs.Arg(0)
	}
	c, err := dial(ctx, master, stdio)
	if err != nil {
		return err
	}
	defer c.Close()
	rep := fsckReport{Path: root, Problems: []fsckProblem{}}
	if err := fsckWalk(ctx, c, root, *verify, &rep); err != nil {
		return err
	}
	rep.Healthy = rep.Missing == 0 && rep.UnderReplicated == 0 && rep.Corrupt == 0 && rep.Divergent == 0
	if *asJSON {
		if err := printJSON(stdio.Stdout, rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(stdio.Stdout, "%s chunk %d (handle %016x): %s: %d replicas listed (target %d) %v", p.Path, p.Index, p.Handle, p.Problem, len(p.Replicas), p.Target, p.Replicas)
			if len(p.Corrupt) > 0 {
				fmt.Fprintf(stdio.Stdout, "; %d corrupt %v", len(p.Corrupt), p.Corrupt)
			}
			if len(p.Divergent) > 0 {
				fmt.Fprintf(stdio.Stdout, "; %d divergent %v", len(p.Divergent), p.Divergent)
			}
			fmt.Fprintln(stdio.Stdout)
		}
		status := "HEALTHY"
		if rep.Missing > 0 {
			status = "MISSING DATA"
		} else if !rep.Healthy {
			status = "DEGRADED"
		}
		fmt.Fprintf(stdio.Stdout, "%s: %d files, %d directories, %d chunks, %s; %d missing, %d under-replicated, %d corrupt, %d divergent: %s\n",
			root, rep.Files, rep.Directories, rep.Chunks, formatSize(rep.Bytes), rep.Missing, rep.UnderReplicated, rep.Corrupt, rep.Divergent, status)
	}
	switch {
	case rep.Missing > 0:
		return &ExitError{Code: fsckExitMissing}
	case rep.Corrupt > 0 || rep.Divergent > 0:
		return &ExitError{Code: fsckExitCorrupt}
	case rep.UnderReplicated > 0:
		return &ExitError{Code: fsckExitUnderRepl}
	}
	return nil
}

func fsckWalk(ctx context.Context, c *client.Client, p string, verify bool, rep *fsckReport) error {
	fi, err := c.Stat(ctx, p)
	if err != nil {
		return err
	}
	if fi.IsDir {
		rep.Directories++
		entries, err := c.List(ctx, p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			child := e.Path
			if child == "" {
				child = path.Join(p, e.Name)
			}
			if err := fsckWalk(ctx, c, child, verify, rep); err != nil {
				if errors.Is(err, client.ErrNotFound) {
					continue // deleted while we walked
				}
				return err
			}
		}
		return nil
	}
	rep.Files++
	locs, err := c.Chunks(ctx, p)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil
		}
		return err
	}
	for _, l := range locs {
		rep.Chunks++
		rep.Bytes += l.Length
		target := fi.Replication
		// Replicas the master marks corrupt (reported bad, kept as the
		// last live copy) are no good copy, read or not.
		corrupt := slices.Clone(l.Corrupt)
		var divergent []string
		good := len(l.Replicas) - len(l.Corrupt)
		if verify {
			good = 0
			var rcs []client.ReplicaContent
			for _, addr := range l.Replicas {
				if slices.Contains(l.Corrupt, addr) {
					continue
				}
				rc, err := c.ReadReplica(ctx, l, addr)
				switch {
				case err == nil:
					good++
					rcs = append(rcs, rc)
				case errors.Is(err, client.ErrChecksum):
					corrupt = append(corrupt, addr)
				default:
					// Unreachable now: not counted as a good copy.
				}
			}
			// No lease: no mutation can be in flight, so the tails and
			// lengths must agree too.
			for _, dv := range client.DivergentReplicas(rcs, l.Primary, l.Primary == "") {
				divergent = append(divergent, dv.Addr)
				c.ReportDivergentReplica(ctx, l, dv)
				good--
			}
		}
		prob := fsckProblem{Path: p, Index: l.Index, Handle: l.Handle, Replicas: l.Replicas, Target: target, Corrupt: corrupt, Divergent: divergent}
		switch {
		case good == 0 && len(l.Corrupt) == 0:
			prob.Problem = "missing"
			rep.Missing++
		case len(corrupt) > 0:
			prob.Problem = "corrupt"
			rep.Corrupt++
		case len(divergent) > 0:
			prob.Problem = "divergent"
			rep.Divergent++
		case target > 0 && good < target:
			prob.Problem = "under-replicated"
			rep.UnderReplicated++
		default:
			continue
		}
		rep.Problems = append(rep.Problems, prob)
	}
	return nil
}
