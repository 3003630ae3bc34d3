// Package bench is the GFS-Go benchmark suite behind `gfs bench`.
//
// A run measures machine-limit baselines and then the workloads, on the same
// machine and in the same data directory, so that every workload figure is also
// a ratio to the ceiling it cannot beat:
//
//	workload   unit    baseline  why
//	seqwrite   MiB/s   relay     R-replica writes cannot beat a raw TCP relay through
//	                             R processes that each write with O_DIRECT (R = 3)
//	seqread    MiB/s   serve     reads cannot beat the faster of raw sendfile and raw
//	randread   MiB/s   serve     read()+write() of a cached file over loopback
//	append     ops/s   rpc       a record append is at least one small request/response
//	metadata   ops/s   rpc       a metadata call is at least one small request/response
//	wordcount  MiB/s   sequential  (opt-in) the same job in one goroutine over a local file
//	sort       MiB/s   sequential  (opt-in) also reported against the I/O floor: read once, write once
//
// The odirect baseline (raw O_DIRECT sequential write and read) is reported
// beside them as the disk's own limit.
//
// Invariants the figures rely on:
//   - Honesty: every byte a read workload returns is compared with what was
//     written (a deterministic, position-addressable pattern per file, see
//     Pattern), and every acknowledged record append is found again through the
//     record reader. A mismatch fails the run with ErrVerify; nothing is
//     skipped to look faster.
//   - Same units: a result's ratio is achieved/baseline_value in the result's
//     unit (MiB/s of payload or ops/s), never across units.
//   - Repeats: with Runs > 1 every figure is the median of the runs and
//     spread_pct is (max-min)/median of the headline figure.
//   - Measured phases only: a workload's seconds, latencies, progress line and
//     CPU profile cover its measured phase, never preparation (files written
//     for a read-only selection) or verification afterwards. A warm-up write
//     waits out the fresh master's lease grace (one lease TTL, during which
//     no lease is granted) while the baselines run, so no figure includes it.
//   - Cleanup: the embedded cluster's directory and every baseline file live in
//     one temporary directory under Options.Dir, removed afterwards; against an
//     existing cluster (-master) the files the run created are deleted.
//
// The harness (percentiles, aggregation, JSON and table output, verification)
// is pure and tested without timing anything; the timed parts only measure.
package bench
