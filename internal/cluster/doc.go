// Package cluster runs a whole GFS-Go cluster in one process: a master and
// N chunkservers on 127.0.0.1, each with its own directory under one root.
// Tests, the benchmark suite and `gfs local` use it.
//
// Layout under Options.Dir: master/ holds the master's op log and
// checkpoints, cs0/, cs1/, ... the chunkservers' stores, and addrs.json the
// addresses picked at first start, so that a restart on the same directory
// comes back on the same ports when they are free (clients and the master's
// memory of locations stay valid) and keeps every byte written before.
// A LOCK file in Options.Dir (internal/dirlock) keeps a second cluster out
// while one runs.
//
// Every goroutine the cluster starts is stopped by Close (or, for one
// chunkserver, by StopChunkserver), which waits for it.
package cluster
