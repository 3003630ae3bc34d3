package main

import (
	"flag"

	"github.com/gfs-go/gfs/control/tlsconfig"
)

// tlsFlags are -tls-cert, -tls-key and -tls-ca, shared by the daemons and
// the client commands; they map onto tlsconfig.Files.
type tlsFlags struct {
	flags tlsconfig.Files
	// env: empty flags default to $GFS_TLS_CERT, $GFS_TLS_KEY, $GFS_TLS_CA
	// (client commands, so that a shell sets them once).
	env bool
}

func (t *tlsFlags) register(fs *flag.FlagSet, env bool) {
	t.env = env
	suffix := ""
	if env {
		suffix = " (default $GFS_TLS_CERT)"
	}
	fs.StringVar(&t.flags.Cert, "tls-cert", "", "PEM certificate of this node for mutual TLS on the control channel"+suffix)
	if env {
		suffix = " (default $GFS_TLS_KEY)"
	}
	fs.StringVar(&t.flags.Key, "tls-key", "", "PEM private key of -tls-cert"+suffix)
	if env {
		suffix = " (default $GFS_TLS_CA)"
	}
	fs.StringVar(&t.flags.CA, "tls-ca", "", "PEM certificate of the cluster's CA (see gfs cert)"+suffix)
}

// files returns the files named by the flags (or the environment).
func (t *tlsFlags) files(stdio IO) tlsconfig.Files {
	f := t.flags
	if t.env && stdio.Getenv != nil {
		if f.Cert == "" {
			f.Cert = stdio.Getenv("GFS_TLS_CERT")
		}
		if f.Key == "" {
			f.Key = stdio.Getenv("GFS_TLS_KEY")
		}
		if f.CA == "" {
			f.CA = stdio.Getenv("GFS_TLS_CA")
		}
	}
	return f
}
