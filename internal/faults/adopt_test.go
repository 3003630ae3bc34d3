package faults

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// Scenario 17 (issue 15, defect 1): one SetVersion sent straight to one
// chunkserver of a running plaintext cluster, as anyone who reaches its port
// can. The master adopts the higher version when that replica reports it
// (GFS 4.5) and used to queue deletes for every replica, the reporter
// included: all three copies of both files were gone within 2 s. Now the
// reporter is kept, the old-version copies are kept until the adopted
// version has its copies again, and both files read back whole.
func TestForgedSetVersionLosesNothing(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 3, replication: 3})
	ctx := context.Background()
	cl := c.dial(t)
	files := map[string][]byte{
		"/adopt/a": pattern(171, chunkSize+chunkSize/3),
		"/adopt/b": pattern(172, chunkSize/5),
	}
	for p, data := range files {
		if err := writeFile(ctx, cl, p, data); err != nil {
			t.Fatal(err)
		}
	}
	// Bump every chunk of both files on one chunkserver only.
	victim := c.csAddr[1]
	cc, err := control.Dial(victim, control.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	csc := controlpb.NewChunkserverClient(cc)
	want := map[uint64]uint64{} // handle -> adopted version
	for p := range files {
		locs, err := cl.Chunks(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range locs {
			v := loc.Version + 10
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := csc.SetVersion(cctx, &controlpb.SetVersionRequest{Handle: loc.Handle, ExpectedVersion: loc.Version, Version: v})
			cancel()
			if err != nil {
				t.Fatalf("SetVersion %x on %s: %v", loc.Handle, victim, err)
			}
			want[loc.Handle] = v
		}
	}
	t.Logf("bumped %d chunks on %s", len(want), victim)
	// Every chunk ends at the adopted version with 3 replicas, the
	// reporter among them, and every byte reads back all along.
	took, ok := eventually(60*time.Second, func() bool {
		for p, data := range files {
			checkFile(t, cl, p, data)
			locs, err := cl.Chunks(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, loc := range locs {
				if loc.Version != want[loc.Handle] || len(loc.Replicas) != 3 {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("not back at 3 replicas of the adopted versions within 60 s: %s", replicationProblem(cl, keys(files), 3, nil))
	}
	t.Logf("3 replicas of the adopted versions after %v", took)
	// After the master's deletes had time to run (GC grace, heartbeats),
	// nothing was lost and every listed replica holds its chunk file.
	time.Sleep(gcGrace + 4*heartbeat)
	for p, data := range files {
		checkFile(t, cl, p, data)
	}
	for h := range want {
		for i := range c.cs {
			if !fileExists(chunkFile(c.csDir[i], h)) {
				t.Fatalf("chunk %x has no file on %s after the adoption", h, c.csAddr[i])
			}
		}
	}
	if !grepLog(c.master, "adopted higher reported version") {
		t.Fatal("the master did not log the adoption")
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
