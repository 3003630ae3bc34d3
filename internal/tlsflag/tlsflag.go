// Package tlsflag holds the TLS flags every GFS-Go command takes
// (-tls-dir, -tls-cert, -tls-key, -tls-ca, -tls-name and, on daemons,
// -insecure) and their environment variables, so that the gfs binary and a
// user's MapReduce binary (mapreduce.Main) read them the same way.
package tlsflag

import (
	"errors"
	"flag"
	"fmt"
	"strconv"

	"github.com/gfs-go/gfs/control/tlsconfig"
)

// ErrNoTLS is a daemon started without TLS credentials and without
// -insecure.
var ErrNoTLS = errors.New("refusing to start without TLS credentials")

// Flags are -tls-dir, -tls-cert, -tls-key and -tls-ca (and, on the
// daemons, -insecure), shared by the daemons and the client commands; they
// map onto tlsconfig.Files.
//
// Precedence: the flags when any TLS flag is given, else the environment
// ($GFS_TLS_CERT, $GFS_TLS_KEY, $GFS_TLS_CA, $GFS_TLS_DIR). At either
// level, name the three files or a directory, not both. A directory holds
// the layout gfs cert writes; this node's files there are NODE.pem and
// NODE-key.pem with NODE the -tls-name ("client" for client commands,
// "master" and "chunkserver" for the daemons), and ca.pem.
type Flags struct {
	Files    tlsconfig.Files
	Dir      string
	Name     string
	defName  string // NAME when neither -tls-name nor $GFS_TLS_NAME says
	Insecure bool
	daemon   bool
}

// Register adds the flags. node is the default certificate name in a
// -tls-dir; daemon adds -insecure.
func (t *Flags) Register(fs *flag.FlagSet, node string, daemon bool) {
	t.daemon, t.defName = daemon, node
	fs.StringVar(&t.Files.Cert, "tls-cert", "", "PEM certificate of this node for mutual TLS (default $GFS_TLS_CERT)")
	fs.StringVar(&t.Files.Key, "tls-key", "", "PEM private key of -tls-cert (default $GFS_TLS_KEY)")
	fs.StringVar(&t.Files.CA, "tls-ca", "", "PEM certificate of the cluster's CA, see gfs cert (default $GFS_TLS_CA)")
	fs.StringVar(&t.Dir, "tls-dir", "", "`DIR` written by gfs cert (or gfs local, which prints tls-dir= on its ready line): "+
		"uses DIR/NAME.pem, DIR/NAME-key.pem, DIR/ca.pem; instead of -tls-cert/-tls-key/-tls-ca (default $GFS_TLS_DIR)")
	fs.StringVar(&t.Name, "tls-name", "", "certificate `NAME` of this node in -tls-dir (default $GFS_TLS_NAME, else "+strconv.Quote(node)+")")
	if daemon {
		fs.BoolVar(&t.Insecure, "insecure", false, "run without TLS: plaintext, unauthenticated control channel and no capabilities "+
			"(anyone who can reach the port can read, overwrite and delete data)")
	}
}

// Resolve returns the TLS files the flags (or the environment) name; zero
// for plaintext. A daemon without files and without -insecure gets
// ErrNoTLS.
func (t *Flags) Resolve(getenv func(string) string) (tlsconfig.Files, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	name := t.Name
	if name == "" {
		name = getenv("GFS_TLS_NAME")
	}
	if name == "" {
		name = t.defName
	}
	f, dir, src := t.Files, t.Dir, "flags"
	if !f.Enabled() && dir == "" {
		if t.Insecure {
			return tlsconfig.Files{}, nil // -insecure overrides the environment
		}
		f = tlsconfig.Files{Cert: getenv("GFS_TLS_CERT"), Key: getenv("GFS_TLS_KEY"), CA: getenv("GFS_TLS_CA")}
		dir, src = getenv("GFS_TLS_DIR"), "environment"
	} else if t.Insecure {
		return tlsconfig.Files{}, errors.New("-insecure with TLS flags: pick one")
	}
	if f.Enabled() && dir != "" {
		if src == "flags" {
			return tlsconfig.Files{}, errors.New("-tls-dir with -tls-cert/-tls-key/-tls-ca: name a directory or the three files, not both")
		}
		return tlsconfig.Files{}, errors.New("GFS_TLS_DIR with GFS_TLS_CERT/GFS_TLS_KEY/GFS_TLS_CA in the environment: set a directory or the three files, not both")
	}
	if dir != "" {
		f = tlsconfig.FilesInDir(dir, name)
	}
	if err := f.Check(); err != nil {
		return tlsconfig.Files{}, err
	}
	if !f.Enabled() && t.daemon {
		return tlsconfig.Files{}, fmt.Errorf("%w: set -tls-dir DIR (certificates from gfs cert -dir DIR) or -tls-cert, -tls-key and -tls-ca "+
			"(or GFS_TLS_DIR / GFS_TLS_CERT, GFS_TLS_KEY, GFS_TLS_CA), or pass -insecure to run plaintext and unauthenticated", ErrNoTLS)
	}
	return f, nil
}
