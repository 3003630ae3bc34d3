package master

import (
	"net"
	"testing"

	"google.golang.org/grpc"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// restart brings a closed fake chunkserver back on its address (a process
// restart) and registers it again.
func (cs *fakeCS) restart() {
	lis, err := net.Listen("tcp", cs.addr)
	if err != nil {
		cs.e.t.Fatal(err)
	}
	cs.mu.Lock()
	cs.lis, cs.closed, cs.done = lis, false, make(chan error, 1)
	cs.srv = grpc.NewServer(control.NewServerOptions(control.ServerOptions{})...)
	controlpb.RegisterChunkserverServer(cs.srv, cs)
	srv, done := cs.srv, cs.done
	cs.mu.Unlock()
	go func() { done <- srv.Serve(lis) }()
	cs.register()
}

// TestRestartedChunkserverReachableAtOnce: calls to a chunkserver that
// registers again after a restart work at once; the master's connection to
// it does not sit in reconnect backoff from the calls that failed while it
// was down (faults B12: new chunks got 2 replicas instead of 3).
func TestRestartedChunkserverReachableAtOnce(t *testing.T) {
	e := newEnv(t, nil)
	var css []*fakeCS
	for range 3 {
		css = append(css, e.addCS(""))
	}
	e.create("/f", 3)
	if loc := e.mustLookup("/f", 0, false, true); len(loc.Replicas) != 3 {
		t.Fatalf("chunk 0 on %v, want 3 replicas", loc.Replicas)
	}
	// Down: allocating fails on it (the connection goes into backoff).
	css[0].close()
	for i := int64(1); i <= 3; i++ {
		if loc := e.mustLookup("/f", i, false, true); len(loc.Replicas) != 2 {
			t.Fatalf("chunk %d with a server down on %v, want 2 replicas", i, loc.Replicas)
		}
	}
	css[0].restart()
	if loc := e.mustLookup("/f", 4, false, true); len(loc.Replicas) != 3 {
		t.Fatalf("chunk 4 right after the restarted server registered: on %v, want 3 replicas", loc.Replicas)
	}
}
