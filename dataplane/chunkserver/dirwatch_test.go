package chunkserver

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/gfs-go/gfs/dataplane/store"
)

// TestDataDirLostStopsServer: a chunkserver whose data directory is
// removed (or replaced) while it serves stops by itself with
// ErrDataDirLost instead of serving chunks from files that are gone.
func TestDataDirLostStopsServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		lose func(dir string) error
	}{
		{"removed", os.RemoveAll},
		{"replaced", func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(dir+"/LOCK", nil, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			dir := t.TempDir()
			s, err := New(Options{Addr: "127.0.0.1:0", Dir: dir, Logger: testLogger(t), HeartbeatInterval: 10 * time.Millisecond,
				Store: store.Options{ChunkSize: testChunkSize, ScrubRate: -1}})
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- s.Serve(context.Background()) }()
			defer s.Close()
			// Healthy: it keeps serving.
			select {
			case err := <-errc:
				t.Fatalf("Serve returned with the directory in place: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
			if err := tc.lose(dir); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, ErrDataDirLost) {
					t.Fatalf("Serve returned %v, want ErrDataDirLost", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve still running 10 s after its data directory was lost")
			}
		})
	}
}
