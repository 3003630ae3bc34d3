package master

import (
	"strings"
	"unicode/utf8"

	"github.com/gfs-go/gfs/control"
	"github.com/gfs-go/gfs/control/controlpb"
)

// Path limits: every path the master accepts is absolute, canonical and
// within these bounds.
const (
	MaxPathBytes = 4096
	MaxNameBytes = 255
	MaxPathDepth = 256
)

func badPath(p, why string) error {
	if len(p) > 80 {
		p = p[:80] + "..."
	}
	return control.Errorf(controlpb.ErrorCode_ERROR_CODE_BAD_PATH, "bad path %q: %s", p, why)
}

// checkPath accepts only canonical absolute paths: "/" or "/a/b" with no
// empty, "." or ".." element, no trailing slash, no NUL, valid UTF-8,
// bounded length and depth. Non-canonical paths are rejected, not cleaned,
// so a path names one entry only.
func checkPath(p string) error {
	if p == "" {
		return badPath(p, "empty")
	}
	if p[0] != '/' {
		return badPath(p, "not absolute")
	}
	if len(p) > MaxPathBytes {
		return badPath(p, "too long")
	}
	if !utf8.ValidString(p) {
		return badPath(p, "not valid UTF-8")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return badPath(p, "contains NUL")
	}
	if p == "/" {
		return nil
	}
	depth := 0
	for _, part := range strings.Split(p[1:], "/") {
		switch {
		case part == "":
			return badPath(p, "empty element (double or trailing slash)")
		case part == "." || part == "..":
			return badPath(p, "contains . or ..")
		case len(part) > MaxNameBytes:
			return badPath(p, "element too long")
		}
		depth++
	}
	if depth > MaxPathDepth {
		return badPath(p, "too deep")
	}
	return nil
}

// parentOf returns the parent directory of a canonical path other than "/".
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i == 0 {
		return "/"
	}
	return p[:i]
}

// baseOf returns the last element of a canonical path ("/" for the root).
func baseOf(p string) string {
	if p == "/" {
		return "/"
	}
	return p[strings.LastIndexByte(p, '/')+1:]
}

// ancestors returns "/", "/a", "/a/b" for "/a/b/c" (not p itself).
func ancestors(p string) []string {
	if p == "/" {
		return nil
	}
	out := []string{"/"}
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// joinPath joins a directory and a name.
func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// isUnder reports whether p is strictly inside dir.
func isUnder(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir) && len(p) > len(dir) && p[len(dir)] == '/'
}
