package faults

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Scenario 13 (restart): a second master started on a live master's
// directory (issue 15, defect 3: it started, both took namespace changes,
// and after a restart the op log had dropped a "torn tail" with an
// acknowledged mkdir in it). The second must exit by itself with an error
// naming the directory and the first master's PID; the first keeps taking
// namespace changes; after the first is killed with kill -9 a master on
// the directory starts at once (no stale lock) and has every acknowledged
// mkdir.
func TestSecondMasterOnLiveDir(t *testing.T) {
	skipShort(t)
	c := startCluster(t, clusterOptions{chunkservers: 1, replication: 1})
	cl := c.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mdir := filepath.Join(c.dir, "master")
	var acked []string
	mkdir := func(p string) {
		t.Helper()
		if err := cl.Mkdir(ctx, p, false); err != nil {
			t.Fatalf("mkdir %s: %v", p, err)
		}
		acked = append(acked, p)
	}
	mkdir("/one")
	second := newDaemon(t, "master2", c.dir, "master", "-addr", freeAddr(t), "-dir", mdir,
		"-lease", leaseTTL.String(), "-heartbeat", heartbeat.String())
	second.start()
	if took, ok := eventually(30*time.Second, func() bool { return !second.running() }); !ok {
		t.Fatalf("a second master on %s still runs after %v", mdir, took)
	}
	c.master.mu.Lock()
	pid := c.master.cmd.Process.Pid
	c.master.mu.Unlock()
	want := fmt.Sprintf("directory %s is in use by process %d", mdir, pid)
	if !grepLog(second, want) {
		t.Fatalf("the second master's error does not say %q:\n%s", want, tail(second.logPath, 10))
	}
	for i := 0; i < 20; i++ {
		mkdir(fmt.Sprintf("/after-%d", i))
	}
	c.master.kill()
	c.master.start()
	for _, p := range acked {
		if _, err := cl.Stat(ctx, p); err != nil {
			t.Fatalf("after the master's restart, acknowledged %s: %v", p, err)
		}
	}
	t.Logf("second master refused (%q); %d acknowledged mkdirs intact after kill -9 and restart", want, len(acked))
}
