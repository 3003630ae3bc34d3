package chunkserver

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/control/tlsconfig"
	"github.com/gfs-go/gfs/dataplane/store"
)

func (m *fakeMaster) LocateChunk(ctx context.Context, req *controlpb.LocateChunkRequest) (*controlpb.LocateChunkResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locate == nil {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK, "unknown chunk %x", req.GetHandle())
	}
	m.located[req.GetHandle()]++
	l := m.locate(req.GetHandle())
	if l == nil {
		return nil, control.Errorf(controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK, "unknown chunk %x", req.GetHandle())
	}
	return &controlpb.LocateChunkResponse{Location: l}, nil
}

func (m *fakeMaster) ReportBadReplica(ctx context.Context, req *controlpb.ReportBadReplicaRequest) (*controlpb.ReportBadReplicaResponse, error) {
	m.mu.Lock()
	m.bad = append(m.bad, req)
	m.mu.Unlock()
	return &controlpb.ReportBadReplicaResponse{}, nil
}

// reportsFor returns the replicas reported bad for chunk h so far.
func (m *fakeMaster) reportsFor(h uint64) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.bad {
		if r.GetHandle() == h {
			out = append(out, r.GetReplica())
		}
	}
	return out
}

// checkCluster is three chunkservers running the replica check against a
// fake master, sorted by address (the first one is the comparer).
func checkCluster(t *testing.T, fm *fakeMaster, masterAddr string) []*Server {
	t.Helper()
	var ss []*Server
	for range 3 {
		ss = append(ss, startServer(t, func(o *Options) {
			o.MasterAddr = masterAddr
			o.HeartbeatInterval = 20 * time.Millisecond
			o.ReplicaCheckInterval = 10 * time.Millisecond
		}))
	}
	slices.SortFunc(ss, func(a, b *Server) int {
		switch {
		case a.Addr() < b.Addr():
			return -1
		case a.Addr() > b.Addr():
			return 1
		}
		return 0
	})
	return ss
}

// putChunk creates chunk h at version v on every server with the same
// data, then rewrites block 1 on the servers in differ (valid checksums:
// each replica verifies alone).
func putChunk(t *testing.T, ss []*Server, h uint64, v uint64, differ ...int) {
	t.Helper()
	data := make([]byte, 3*store.BlockSize+500)
	for i := range data {
		data[i] = byte(i*7 + int(h))
	}
	for i, s := range ss {
		if err := s.Store().Create(store.Handle(h), store.Version(v)); err != nil {
			t.Fatal(err)
		}
		if err := s.Store().WriteAt(store.Handle(h), data, 0); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(differ, i) {
			if err := s.Store().WriteAt(store.Handle(h), []byte("other bytes at the same version"), store.BlockSize+100); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestReplicaCheckReportsDivergentReplica: the lowest-address replica
// compares the stored checksums of a chunk's replicas and reports the one
// whose bytes differ at the same version (majority), and only that one;
// chunks whose replicas agree are never reported; the other replicas
// leave the comparing to it.
func TestReplicaCheckReportsDivergentReplica(t *testing.T) {
	noLeaks(t)
	fm, maddr := startFakeMaster(t)
	ss := checkCluster(t, fm, maddr)
	addrs := addrsOf(ss)
	putChunk(t, ss, 42, 5, 2) // the last one diverges
	putChunk(t, ss, 43, 5)    // all agree
	putChunk(t, ss, 44, 7, 0) // the comparer itself diverges
	fm.mu.Lock()
	fm.locate = func(h uint64) *controlpb.ChunkLocation {
		v := uint64(5)
		if h == 44 {
			v = 7
		}
		// The master's order is not the address order.
		return &controlpb.ChunkLocation{Handle: h, Version: v, Replicas: []string{addrs[1], addrs[2], addrs[0]}}
	}
	fm.mu.Unlock()
	waitFor(t, "reports of chunks 42 and 44", func() bool {
		return len(fm.reportsFor(42)) > 0 && len(fm.reportsFor(44)) > 0
	})
	// Every chunk compared at least twice more: 43 is still unreported.
	c := ss[0].ReplicaChecks().Compared
	waitFor(t, "more comparisons", func() bool { return ss[0].ReplicaChecks().Compared >= c+6 })
	if got := fm.reportsFor(42); slices.ContainsFunc(got, func(a string) bool { return a != addrs[2] }) {
		t.Fatalf("chunk 42 reports %v, want only %s", got, addrs[2])
	}
	if got := fm.reportsFor(44); slices.ContainsFunc(got, func(a string) bool { return a != addrs[0] }) {
		t.Fatalf("chunk 44 reports %v, want only %s (the comparer itself)", got, addrs[0])
	}
	if got := fm.reportsFor(43); len(got) > 0 {
		t.Fatalf("chunk 43, whose replicas agree, reported: %v", got)
	}
	if ss[0].ReplicaChecks().Reported < 2 {
		t.Fatalf("comparer's counters %+v", ss[0].ReplicaChecks())
	}
	for _, s := range ss[1:] {
		if rc := s.ReplicaChecks(); rc != (ReplicaChecks{}) {
			t.Fatalf("%s is not the lowest-address replica but compared: %+v", s.Addr(), rc)
		}
	}
}

// TestReplicaCheckSkipsWhatMayChange: a chunk under a lease, a chunk the
// master knows at another version and a chunk listed on one replica only
// are never compared, however much their replicas differ.
func TestReplicaCheckSkipsWhatMayChange(t *testing.T) {
	noLeaks(t)
	fm, maddr := startFakeMaster(t)
	ss := checkCluster(t, fm, maddr)
	addrs := addrsOf(ss)
	for h := uint64(50); h < 53; h++ {
		putChunk(t, ss, h, 5, 1)
	}
	fm.mu.Lock()
	fm.locate = func(h uint64) *controlpb.ChunkLocation {
		l := &controlpb.ChunkLocation{Handle: h, Version: 5, Replicas: slices.Clone(addrs)}
		switch h {
		case 50:
			l.Primary = addrs[1]
		case 51:
			l.Version = 6
		case 52:
			l.Replicas = addrs[:1]
		}
		return l
	}
	fm.mu.Unlock()
	waitFor(t, "each chunk located 3 times by each server", func() bool {
		fm.mu.Lock()
		defer fm.mu.Unlock()
		return fm.located[50] >= 9 && fm.located[51] >= 9 && fm.located[52] >= 9
	})
	for h := uint64(50); h < 53; h++ {
		if got := fm.reportsFor(h); len(got) > 0 {
			t.Fatalf("chunk %d reported: %v", h, got)
		}
	}
	for _, s := range ss {
		if rc := s.ReplicaChecks(); rc != (ReplicaChecks{}) {
			t.Fatalf("%s compared: %+v", s.Addr(), rc)
		}
	}
}

// TestBlockChecksumsRPC: a replica answers with its stored checksums at
// its version only; under TLS the master and other chunkservers may ask,
// clients may not, and chunkservers still may not call the master's other
// methods.
func TestBlockChecksumsRPC(t *testing.T) {
	noLeaks(t)
	dir := tlsTestDir(t)
	s := startServer(t, func(o *Options) { o.TLS = tlsconfig.FilesInDir(dir, "cs0") })
	ctx := context.Background()
	as := func(node string) controlpb.ChunkserverClient {
		cc, err := control.Dial(s.Addr(), control.DialOptions{TLS: tlsClientConfig(t, dir, node)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return controlpb.NewChunkserverClient(cc)
	}
	master, peer, client := as("master"), as("cs1"), as("client")
	if _, err := master.CreateChunk(ctx, &controlpb.CreateChunkRequest{Handle: 9, Version: 4}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, store.BlockSize+10)
	if err := s.Store().WriteAt(9, data, 0); err != nil {
		t.Fatal(err)
	}
	want, err := s.Store().BlockChecksums(9)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]controlpb.ChunkserverClient{"master": master, "chunkserver": peer} {
		resp, err := c.BlockChecksums(ctx, &controlpb.BlockChecksumsRequest{Handle: 9, Version: 4})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.GetVersion() != 4 || resp.GetLength() != int64(len(data)) || !slices.Equal(resp.GetSums(), want.Sums) || len(want.Sums) != 2 || resp.GetCorrupt() {
			t.Fatalf("%s: %v, want sums %x", name, resp, want.Sums)
		}
	}
	if _, err := peer.BlockChecksums(ctx, &controlpb.BlockChecksumsRequest{Handle: 9, Version: 3}); control.Code(err) != controlpb.ErrorCode_ERROR_CODE_STALE_VERSION {
		t.Fatalf("checksums at another version: %v, want STALE_VERSION", err)
	}
	if _, err := peer.BlockChecksums(ctx, &controlpb.BlockChecksumsRequest{Handle: 10, Version: 4}); control.Code(err) != controlpb.ErrorCode_ERROR_CODE_UNKNOWN_CHUNK {
		t.Fatalf("checksums of a missing chunk: %v, want UNKNOWN_CHUNK", err)
	}
	if _, err := client.BlockChecksums(ctx, &controlpb.BlockChecksumsRequest{Handle: 9, Version: 4}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a client asking for checksums: %v, want PermissionDenied", err)
	}
	if _, err := peer.SetVersion(ctx, &controlpb.SetVersionRequest{Handle: 9, ExpectedVersion: 4, Version: 5}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a chunkserver calling SetVersion: %v, want PermissionDenied", err)
	}
}
