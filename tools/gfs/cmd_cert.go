package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gfs-go/gfs/control/tlsconfig"
)

// cmdCert creates a test CA and node certificates for a local cluster.
func cmdCert(ctx context.Context, args []string, stdio IO) error {
	fs := newFlagSet("cert", "", stdio)
	dir := fs.String("dir", "", "directory for ca.pem, ca-key.pem, NODE.pem and NODE-key.pem (required; an existing CA there is reused)")
	hosts := fs.String("hosts", "127.0.0.1,::1,localhost", "comma-separated IP addresses and DNS names the node certificates are valid for")
	nodes := fs.String("nodes", "master,cs0,cs1,cs2,client", "comma-separated NAME or NAME:ROLE (master, chunkserver, client); "+
		"without a role, master* is a master, cs* and chunkserver* are chunkservers, others clients")
	validity := fs.Duration("validity", tlsconfig.DefaultValidity, "certificate lifetime")
	if err := parseFlags(fs, args, 0, 0); err != nil {
		return err
	}
	if *dir == "" {
		fmt.Fprintln(stdio.Stderr, "gfs cert: -dir is required")
		fs.Usage()
		return &ExitError{Code: 2}
	}
	list, err := tlsconfig.ParseNodes(*nodes)
	if err != nil {
		return err
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	if len(hostList) == 0 {
		return fmt.Errorf("-hosts %q names no host", *hosts)
	}
	written, err := tlsconfig.GenerateCerts(tlsconfig.CertOptions{Dir: *dir, Hosts: hostList, Nodes: list, Validity: *validity})
	for _, f := range written {
		fmt.Fprintln(stdio.Stdout, filepath.Join(*dir, f))
	}
	if err != nil {
		return err
	}
	n := list[0].Name
	fmt.Fprintf(stdio.Stderr, "use: -tls-cert %s -tls-key %s -tls-ca %s (per node)\n",
		filepath.Join(*dir, tlsconfig.CertFile(n)), filepath.Join(*dir, tlsconfig.KeyFile(n)), filepath.Join(*dir, tlsconfig.CAFile))
	return nil
}
