package client_test

import (
	"errors"
	"testing"

	"github.com/gfs-go/gfs/client"
)

func TestNamespace(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)

	if err := c.Mkdir(ctx, "/a/b", false); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("mkdir without parent: %v, want ErrNotFound", err)
	}
	if err := c.Mkdir(ctx, "/a/b", true); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "/a/b/f", client.CreateOptions{Replication: 2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "/a/b/f", client.CreateOptions{}); !errors.Is(err, client.ErrExists) {
		t.Fatalf("create twice: %v, want ErrExists", err)
	}
	if err := c.Create(ctx, "/a/b/f/g", client.CreateOptions{}); !errors.Is(err, client.ErrNotDir) {
		t.Fatalf("create under a file: %v, want ErrNotDir", err)
	}
	if err := c.Create(ctx, "/x/y", client.CreateOptions{Parents: true}); err != nil {
		t.Fatalf("create with parents: %v", err)
	}
	fi, err := c.Stat(ctx, "/a/b/f")
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir || fi.Name != "f" || fi.Path != "/a/b/f" || fi.Replication != 2 || fi.Length != 0 {
		t.Fatalf("stat = %+v", fi)
	}
	if _, err := c.Stat(ctx, "/nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("stat missing: %v, want ErrNotFound", err)
	}
	if _, err := c.Open(ctx, "/a/b"); !errors.Is(err, client.ErrIsDir) {
		t.Fatalf("open dir: %v, want ErrIsDir", err)
	}
	if err := c.Create(ctx, "/a/b/e", client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, "/a/b")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "e" || list[1].Name != "f" {
		t.Fatalf("list = %+v", list)
	}
	if err := c.Rename(ctx, "/a/b/f", "/a/g"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/a/g"); err != nil {
		t.Fatalf("stat renamed: %v", err)
	}
	if err := c.Rename(ctx, "/a/g", "/a/b/e"); !errors.Is(err, client.ErrExists) {
		t.Fatalf("rename onto existing: %v, want ErrExists", err)
	}
	if err := c.Delete(ctx, "/a", false); !errors.Is(err, client.ErrNotEmpty) {
		t.Fatalf("delete non-empty: %v, want ErrNotEmpty", err)
	}
	if err := c.Delete(ctx, "/a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, "/a/g"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("stat after delete: %v, want ErrNotFound", err)
	}
	if err := c.Create(ctx, "relative", client.CreateOptions{}); !errors.Is(err, client.ErrBadPath) {
		t.Fatalf("relative path: %v, want ErrBadPath", err)
	}
}

func TestClosedClient(t *testing.T) {
	_, c := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	c.Close()
	if _, err := c.Stat(ctx, "/"); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("stat on closed client: %v, want ErrClosed", err)
	}
	if _, err := c.RecordAppend(ctx, "/f", []byte("x")); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("append on closed client: %v, want ErrClosed", err)
	}
}

// TestOpenPurgesStaleLocations: another client replaces a file; opening it
// again must not read the old file's chunks from the location cache.
func TestOpenPurgesStaleLocations(t *testing.T) {
	cl, a := startCluster(t, clusterOptions(t))
	ctx := testCtx(t)
	b, err := client.Dial(ctx, cl.MasterAddr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	put := func(c *client.Client, s string) {
		t.Helper()
		if err := c.Create(ctx, "/f", client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f, _ := c.Open(ctx, "/f")
		if _, err := f.WriteAtContext(ctx, []byte(s), 0); err != nil {
			t.Fatal(err)
		}
	}
	read := func(c *client.Client) string {
		t.Helper()
		f, err := c.Open(ctx, "/f")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := f.ReadAtContext(ctx, buf, 0); err != nil {
			t.Fatal(err)
		}
		return string(buf)
	}
	put(a, "old")
	if got := read(a); got != "old" {
		t.Fatalf("read %q", got)
	}
	if err := b.Delete(ctx, "/f", false); err != nil {
		t.Fatal(err)
	}
	put(b, "new")
	if got := read(a); got != "new" {
		t.Fatalf("after replacement read %q, want new", got)
	}
}
