package master

import (
	"errors"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/control/controlpb"
	"github.com/gfs-go/gfs/internal/dirlock"
)

// TestSecondMasterOnLiveDirRefused (issue 15, defect 3): a second master on
// the directory of a running one is refused with an error naming the
// directory, before it reads the op log; the first keeps accepting
// namespace changes, and once it is closed a new master starts on the
// directory and recovers every acknowledged change.
func TestSecondMasterOnLiveDirRefused(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx()
	if _, err := e.mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/before"}); err != nil {
		t.Fatal(err)
	}
	m2, err := New(e.opts)
	if err == nil {
		m2.Close()
		t.Fatal("a second master started on a live master's directory")
	}
	if !errors.Is(err, dirlock.ErrLocked) || !strings.Contains(err.Error(), e.dir) {
		t.Fatalf("second master: %v, want dirlock.ErrLocked naming %s", err, e.dir)
	}
	if _, err := e.mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/after"}); err != nil {
		t.Fatalf("first master after the refused second: %v", err)
	}
	e.restartMaster() // Close releases the directory; New takes it again
	for _, p := range []string{"/before", "/after"} {
		if _, err := e.mc.Stat(e.ctx(), &controlpb.StatRequest{Path: p}); err != nil {
			t.Fatalf("stat %s after the restart: %v", p, err)
		}
	}
}
