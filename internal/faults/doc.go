// Package faults is the GFS-Go fault suite: tests only (this file holds the
// package documentation, the scenarios are in _test.go files).
//
// Each scenario starts real daemons — `gfs master` and `gfs chunkserver`
// processes built from ./tools/gfs into a temporary directory once per test
// binary — with short timers (lease 2 s, heartbeat 200 ms, dead after 1 s,
// 1 MiB chunks), injects one kind of failure (kill -9, restart, flipped
// bytes, lost data directory, full disk, network partition through network
// namespaces, random chaos) while clients work, and then checks the
// failure contract of docs/faults.md:
//
//   - every mutation the client library acknowledged reads back intact
//     (record appends exactly once through the record reader);
//   - failures surface as clear errors in bounded time, never as wrong bytes;
//   - the master brings every chunk back to its target replication, and
//     stale or corrupt replicas are never served and are deleted.
//
// Every process a test starts is killed in t.Cleanup, and every test checks
// for leaked goroutines with go.uber.org/goleak. The daemons' logs go to
// files in the test's temporary directory and are printed (their tails)
// when a test fails.
//
// Expensive scenarios run a bounded version by default; environment
// variables make them longer (GFS_CHAOS_DURATION, GFS_CHAOS_SEED; see
// docs/faults.md). GFS_FAULTS_RACE=1 builds the daemons with -race.
package faults
