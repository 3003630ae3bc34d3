package master

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

func TestCheckPath(t *testing.T) {
	good := []string{"/", "/a", "/a/b.c", "/a b/ü", "/" + strings.Repeat("x", MaxNameBytes)}
	bad := []string{"", "a", "a/b", "//", "/a/", "/a//b", "/./a", "/a/..", "/a/.", "/a\x00b",
		"/" + strings.Repeat("x", MaxNameBytes+1), strings.Repeat("/x", MaxPathDepth+1), "/\xff",
		"/" + strings.Repeat("a/", MaxPathBytes/2)}
	for _, p := range good {
		if err := checkPath(p); err != nil {
			t.Errorf("checkPath(%q) = %v", p, err)
		}
	}
	for _, p := range bad {
		if err := checkPath(p); control.Code(err) != controlpb.ErrorCode_ERROR_CODE_BAD_PATH {
			t.Errorf("checkPath(%q) = %v, want BAD_PATH", p, err)
		}
	}
}

func TestNamespaceOps(t *testing.T) {
	e := newEnv(t, nil)
	mc, ctx := e.mc, e.ctx()
	code := func(err error) controlpb.ErrorCode { return control.Code(err) }
	steps := []struct {
		name string
		do   func() error
		want controlpb.ErrorCode
	}{
		{"mkdir /a", func() error { _, err := mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/a"}); return err }, 0},
		{"mkdir /a again", func() error { _, err := mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/a"}); return err }, controlpb.ErrorCode_ERROR_CODE_EXISTS},
		{"mkdir -p /a", func() error { _, err := mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/a", Parents: true}); return err }, 0},
		{"mkdir /x/y no parents", func() error { _, err := mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/x/y"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"mkdir -p /x/y/z", func() error {
			_, err := mc.Mkdir(ctx, &controlpb.MkdirRequest{Path: "/x/y/z", Parents: true})
			return err
		}, 0},
		{"create /a/f", func() error { _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/f"}); return err }, 0},
		{"create /a/f again", func() error { _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/f"}); return err }, controlpb.ErrorCode_ERROR_CODE_EXISTS},
		{"create under file", func() error { _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/f/g"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_DIR},
		{"create -p under file", func() error {
			_, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/f/g/h", Parents: true})
			return err
		}, controlpb.ErrorCode_ERROR_CODE_NOT_DIR},
		{"create bad path", func() error { _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/../f"}); return err }, controlpb.ErrorCode_ERROR_CODE_BAD_PATH},
		{"create repl 99", func() error {
			_, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/a/r", Replication: 99})
			return err
		}, controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT},
		{"create /", func() error { _, err := mc.Create(ctx, &controlpb.CreateRequest{Path: "/"}); return err }, controlpb.ErrorCode_ERROR_CODE_EXISTS},
		{"delete non-empty", func() error { _, err := mc.Delete(ctx, &controlpb.DeleteRequest{Path: "/a"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_EMPTY},
		{"delete /", func() error {
			_, err := mc.Delete(ctx, &controlpb.DeleteRequest{Path: "/", Recursive: true})
			return err
		}, controlpb.ErrorCode_ERROR_CODE_BAD_PATH},
		{"delete missing", func() error { _, err := mc.Delete(ctx, &controlpb.DeleteRequest{Path: "/nope"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"rename into self", func() error { _, err := mc.Rename(ctx, &controlpb.RenameRequest{Src: "/x", Dst: "/x/y/q"}); return err }, controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT},
		{"rename onto existing", func() error { _, err := mc.Rename(ctx, &controlpb.RenameRequest{Src: "/x", Dst: "/a"}); return err }, controlpb.ErrorCode_ERROR_CODE_EXISTS},
		{"rename missing", func() error { _, err := mc.Rename(ctx, &controlpb.RenameRequest{Src: "/q", Dst: "/r"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"rename dir", func() error { _, err := mc.Rename(ctx, &controlpb.RenameRequest{Src: "/x", Dst: "/a/x2"}); return err }, 0},
		{"stat moved", func() error { _, err := mc.Stat(ctx, &controlpb.StatRequest{Path: "/a/x2/y/z"}); return err }, 0},
		{"stat old", func() error { _, err := mc.Stat(ctx, &controlpb.StatRequest{Path: "/x/y"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_FOUND},
		{"lookup dir", func() error { _, err := mc.Lookup(ctx, &controlpb.LookupRequest{Path: "/a"}); return err }, controlpb.ErrorCode_ERROR_CODE_IS_DIR},
		{"lookup negative", func() error {
			_, err := mc.Lookup(ctx, &controlpb.LookupRequest{Path: "/a/f", FirstIndex: -1})
			return err
		}, controlpb.ErrorCode_ERROR_CODE_BAD_ARGUMENT},
		{"delete -r /a", func() error {
			_, err := mc.Delete(ctx, &controlpb.DeleteRequest{Path: "/a", Recursive: true})
			return err
		}, 0},
		{"stat deleted", func() error { _, err := mc.Stat(ctx, &controlpb.StatRequest{Path: "/a/f"}); return err }, controlpb.ErrorCode_ERROR_CODE_NOT_FOUND},
	}
	for _, s := range steps {
		if got := code(s.do()); got != s.want {
			t.Fatalf("%s: code %v, want %v", s.name, got, s.want)
		}
	}
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 25; i++ {
		e.create(fmt.Sprintf("/d/f%02d", i), 0)
	}
	e.mc.Mkdir(e.ctx(), &controlpb.MkdirRequest{Path: "/d/sub"})
	var names []string
	after := ""
	for pages := 0; ; pages++ {
		resp, err := e.mc.List(e.ctx(), &controlpb.ListRequest{Path: "/d", StartAfter: after, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range resp.Entries {
			names = append(names, fi.Name)
			if fi.Path != "/d/"+fi.Name || fi.IsDir != (fi.Name == "sub") {
				t.Fatalf("entry %+v", fi)
			}
		}
		if !resp.Truncated {
			break
		}
		after = names[len(names)-1]
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(names) != 26 || names[0] != "f00" || names[25] != "sub" {
		t.Fatalf("listed %d: %v", len(names), names)
	}
	resp, err := e.mc.List(e.ctx(), &controlpb.ListRequest{Path: "/d/f03"})
	if err != nil || len(resp.Entries) != 1 || resp.Entries[0].Path != "/d/f03" {
		t.Fatalf("list of a file = %v, %v", resp, err)
	}
}

// TestRecoveryMatchesState: a namespace built by many operations (and
// checkpoints in between) reads back identically after restart.
func TestRecoveryMatchesState(t *testing.T) {
	for _, every := range []int{100000, 7} {
		t.Run(fmt.Sprintf("checkpoint-every-%d", every), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.CheckpointEvery = every })
			e.addCS("")
			e.addCS("")
			for i := 0; i < 20; i++ {
				e.create(fmt.Sprintf("/r/d%d/f%d", i%3, i), 2)
				if i%4 == 0 {
					e.mustLookup(fmt.Sprintf("/r/d%d/f%d", i%3, i), 0, false, true)
				}
			}
			e.mc.Rename(e.ctx(), &controlpb.RenameRequest{Src: "/r/d1", Dst: "/moved"})
			e.mc.Delete(e.ctx(), &controlpb.DeleteRequest{Path: "/r/d2", Recursive: true})
			if every < 100 {
				// Let the loop take the checkpoints it was kicked for.
				e.m.checkpoint()
			}
			e.create("/after/ckpt", 1)
			before := dumpState(e.m)
			e.restartMaster()
			after := dumpState(e.m)
			if before != after {
				t.Fatalf("state differs after restart:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// dumpState renders the persisted part of the state deterministically.
func dumpState(m *Master) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var lines []string
	for p, n := range m.st.nodes {
		l := fmt.Sprintf("%s dir=%v repl=%d mtime=%d", p, n.dir, n.repl, n.mtimeMs)
		for _, h := range n.chunks {
			l += fmt.Sprintf(" %x@%d", h, m.st.chunks[h].version)
		}
		lines = append(lines, l)
	}
	for id, tr := range m.st.trash {
		lines = append(lines, fmt.Sprintf("trash %d %s %d %v", id, tr.path, tr.deletedMs, tr.chunks))
	}
	lines = append(lines, fmt.Sprintf("chunks=%d ceiling=%d nextTrash=%d", len(m.st.chunks), m.st.ceiling, m.st.nextTrash))
	sortStrings(lines)
	return strings.Join(lines, "\n")
}
