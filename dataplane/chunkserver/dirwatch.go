package chunkserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrDataDirLost is returned by Serve when the chunk store's directory
// disappeared or was replaced while the server ran (a lost, failed or
// unmounted disk). The server stops rather than keep serving and reporting
// chunks from files that are gone: the master declares it dead and
// re-replicates its chunks from the other replicas (fail-stop).
var ErrDataDirLost = errors.New("chunkserver: data directory lost")

// dirWatch remembers the identity of the data directory and of the
// store's LOCK file at start.
type dirWatch struct {
	dir, lock   string
	dirFI, lkFI os.FileInfo
}

func newDirWatch(dir string) (*dirWatch, error) {
	w := &dirWatch{dir: dir, lock: filepath.Join(dir, "LOCK")}
	var err error
	if w.dirFI, err = os.Stat(w.dir); err != nil {
		return nil, err
	}
	if w.lkFI, err = os.Stat(w.lock); err != nil {
		return nil, err
	}
	return w, nil
}

// check returns nil while the directory and its LOCK file are the ones the
// store opened, an error wrapping ErrDataDirLost otherwise.
func (w *dirWatch) check() error {
	for _, f := range []struct {
		path string
		fi   os.FileInfo
	}{{w.dir, w.dirFI}, {w.lock, w.lkFI}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDataDirLost, err)
		}
		if !os.SameFile(f.fi, fi) {
			return fmt.Errorf("%w: %s was replaced", ErrDataDirLost, f.path)
		}
	}
	return nil
}

// watchDir checks the data directory every heartbeat interval until ctx
// ends; when it is lost it records why and wakes Serve, which stops the
// server.
func (s *Server) watchDir(ctx context.Context) {
	t := time.NewTicker(s.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.dirs.check(); err != nil {
			s.log.Error("data directory lost; stopping so that the master re-replicates", "dir", s.opts.Dir, "err", err)
			s.lostErr = err
			close(s.lost)
			return
		}
	}
}
