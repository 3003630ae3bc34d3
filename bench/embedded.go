package bench

import (
	"context"
	"errors"
	"runtime"

	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/mapreduce/apps"
	"github.com/gfs-go/gfs/mapreduce/mrlocal"
)

// StartEmbeddedCluster is the Options.StartCluster of `gfs bench`: an
// in-process master and chunkservers on 127.0.0.1 (internal/cluster) with
// their data under o.Dir, stopped by Target.Close. Its StartMR starts an
// in-process coordinator and one worker beside each chunkserver
// (mrlocal, the built-in apps), stopped before the cluster.
func StartEmbeddedCluster(ctx context.Context, o ClusterOptions) (Target, error) {
	c, err := cluster.Start(ctx, cluster.Options{
		Dir:          o.Dir,
		Chunkservers: o.Chunkservers,
		ChunkSize:    o.ChunkSizeBytes,
		Replication:  o.Replication,
		LeaseTTL:     o.LeaseTTL,
		Logger:       o.Logger,
	})
	if err != nil {
		return Target{}, err
	}
	startMR := func(ctx context.Context, dir string) (*MRCluster, error) {
		workers := len(c.ChunkserverAddrs())
		l, err := mrlocal.Start(ctx, c, mrlocal.Options{Dir: dir, Workers: workers, Apps: apps.All(), Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		mc, err := l.Client()
		if err != nil {
			return nil, errors.Join(err, l.Close())
		}
		return &MRCluster{Client: mc, Workers: workers, Slots: runtime.NumCPU(), // the worker's default slots
			Close: func() error { return errors.Join(mc.Close(), l.Close()) }}, nil
	}
	return Target{MasterAddr: c.MasterAddr(), Close: c.Close, StartMR: startMR}, nil
}
