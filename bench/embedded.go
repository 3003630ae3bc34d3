package bench

import (
	"context"

	"github.com/gfs-go/gfs/internal/cluster"
)

// StartEmbeddedCluster is the Options.StartCluster of `gfs bench`: an
// in-process master and chunkservers on 127.0.0.1 (internal/cluster) with
// their data under o.Dir, stopped by Target.Close.
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
	return Target{MasterAddr: c.MasterAddr(), Close: c.Close}, nil
}
