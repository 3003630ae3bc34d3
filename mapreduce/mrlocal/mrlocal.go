// Package mrlocal runs a MapReduce coordinator and workers in-process on an
// embedded cluster (internal/cluster): what gfs local -mr-workers, the
// benchmark suite and in-process tests use. Worker i sits beside
// chunkserver i mod N, so map tasks can be data-local as on a real cluster.
package mrlocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"github.com/gfs-go/gfs/client"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/internal/cluster"
	"github.com/gfs-go/gfs/mapreduce"
	"github.com/gfs-go/gfs/mapreduce/tasktable"
)

// Options describe the MapReduce side of a local cluster.
type Options struct {
	// Dir holds the coordinator's and the workers' directories (required).
	Dir string
	// Workers to start (>= 1).
	Workers int
	// Slots per worker (0 = the worker default, the CPU count).
	Slots int
	// CoordinatorAddr is the coordinator's listen address ("" =
	// 127.0.0.1:0).
	CoordinatorAddr string
	// Apps the coordinator and workers know (required).
	Apps mapreduce.Apps
	// SortBufferBytes per map attempt (0 = the worker default).
	SortBufferBytes int
	// Table tunes the coordinator's task table.
	Table tasktable.Options
	// DataTLS: the cluster's chunkservers require TLS on the data channel.
	DataTLS bool
	// Logger receives the daemons' logs; nil discards.
	Logger *slog.Logger
}

// Local is a running coordinator and its workers.
type Local struct {
	coord   *mapreduce.Coordinator
	addr    string
	clients []*client.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    chan error
	tls     tlsconfig.Files
}

// Start starts the coordinator and the workers against cluster c.
func Start(ctx context.Context, c *cluster.Cluster, opts Options) (*Local, error) {
	if opts.Dir == "" || opts.Workers < 1 || opts.Apps == nil {
		return nil, errors.New("mrlocal: Options needs Dir, Workers >= 1 and Apps")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Local{errs: make(chan error, opts.Workers+1), tls: c.TLSFiles("client")}
	dial := func(node string) (*client.Client, error) {
		files := c.TLSFiles(node)
		cfg, err := tlsconfig.Client(files)
		if err != nil {
			return nil, err
		}
		fs, err := client.Dial(ctx, c.MasterAddr(), client.Options{TLS: cfg, DataTLS: opts.DataTLS})
		if err != nil {
			return nil, err
		}
		l.clients = append(l.clients, fs)
		return fs, nil
	}
	fs, err := dial("coordinator")
	if err != nil {
		l.closeClients()
		return nil, fmt.Errorf("mrlocal: %w", err)
	}
	l.coord, err = mapreduce.NewCoordinator(ctx, mapreduce.CoordinatorOptions{Dir: filepath.Join(opts.Dir, "coordinator"), FS: fs,
		Apps: opts.Apps, TLS: c.TLSFiles("coordinator"), Table: opts.Table, Logger: log.With("node", "coordinator")})
	if err != nil {
		l.closeClients()
		return nil, err
	}
	addr := opts.CoordinatorAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		l.coord.Close()
		l.closeClients()
		return nil, fmt.Errorf("mrlocal: coordinator: %w", err)
	}
	l.addr = lis.Addr().String()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := l.coord.Serve(lis); err != nil {
			l.errs <- err
		}
	}()
	wctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	css := c.ChunkserverAddrs()
	for i := range opts.Workers {
		fs, err := dial("worker")
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("mrlocal: %w", err)
		}
		w, err := mapreduce.NewWorker(mapreduce.WorkerOptions{Coordinator: l.addr, Dir: filepath.Join(opts.Dir, fmt.Sprintf("worker%d", i)),
			FS: fs, Apps: opts.Apps, Slots: opts.Slots, Chunkserver: css[i%len(css)], TLS: c.TLSFiles("worker"),
			SortBufferBytes: opts.SortBufferBytes, Logger: log.With("node", fmt.Sprintf("worker%d", i))})
		if err != nil {
			l.Close()
			return nil, err
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			if err := w.Run(wctx); err != nil {
				l.errs <- err
			}
		}()
	}
	return l, nil
}

// CoordinatorAddr is the coordinator's HOST:PORT.
func (l *Local) CoordinatorAddr() string { return l.addr }

// Client returns a submitter connected to the coordinator with the
// cluster's client certificate.
func (l *Local) Client() (*mapreduce.Client, error) {
	cfg, err := tlsconfig.Client(l.tls)
	if err != nil {
		return nil, err
	}
	return mapreduce.DialCoordinator(l.addr, cfg)
}

// Close stops the workers and the coordinator.
func (l *Local) Close() error {
	if l.cancel != nil {
		l.cancel()
	}
	err := l.coord.Close()
	l.wg.Wait()
	l.closeClients()
	select {
	case werr := <-l.errs:
		if err == nil {
			err = werr
		}
	default:
	}
	return err
}

func (l *Local) closeClients() {
	for _, c := range l.clients {
		c.Close()
	}
	l.clients = nil
}
