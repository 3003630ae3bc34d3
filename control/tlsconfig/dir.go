package tlsconfig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrCAExpired reports a CA in a certificate directory that is no longer
// (or not yet) valid. EnsureCerts never replaces a CA: other nodes may
// trust it.
var ErrCAExpired = errors.New("tlsconfig: CA certificate expired")

// ErrForeignCert reports a node certificate in a directory that its CA did
// not sign.
var ErrForeignCert = errors.New("tlsconfig: certificate not signed by the directory's CA")

// FilesInDir names node's files in dir as GenerateCerts writes them:
// NODE.pem, NODE-key.pem and ca.pem. This is the -tls-dir layout.
func FilesInDir(dir, node string) Files {
	return Files{
		Cert: filepath.Join(dir, CertFile(node)),
		Key:  filepath.Join(dir, KeyFile(node)),
		CA:   filepath.Join(dir, CAFile),
	}
}

// renewBefore is how long before its expiry EnsureCerts replaces a node
// certificate, so that a cluster started now does not lose its
// certificates minutes later.
const renewBefore = 24 * time.Hour

// EnsureCerts makes dir hold a valid certificate for every node: a CA is
// created when dir has none (ca.pem and ca-key.pem), node certificates that
// are missing or expire within a day are (re)created with the directory's
// CA, and every other file is kept. It fails, changing nothing, when the
// CA is expired or a node certificate was not signed by the CA: replacing
// a CA would silently lock out every node that trusts the old one. It
// returns the files written.
func EnsureCerts(dir string, nodes []Node, now func() time.Time) ([]string, error) {
	if now == nil {
		now = time.Now
	}
	t := now()
	caCert, _, err := loadCA(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		caCert = nil
	case err != nil:
		return nil, err
	case t.After(caCert.NotAfter) || t.Before(caCert.NotBefore):
		return nil, fmt.Errorf("%s (valid %s to %s): %w; move the directory away to start a new CA (every node then needs new certificates)",
			filepath.Join(dir, CAFile), caCert.NotBefore.Format(time.RFC3339), caCert.NotAfter.Format(time.RFC3339), ErrCAExpired)
	}
	var pool *x509.CertPool
	if caCert != nil {
		pool = x509.NewCertPool()
		pool.AddCert(caCert)
	}
	var todo, renew []Node
	for _, n := range nodes {
		if err := n.check(); err != nil {
			return nil, err
		}
		f := FilesInDir(dir, n.Name)
		cert, err := readCert(f.Cert)
		if errors.Is(err, fs.ErrNotExist) {
			if _, kerr := os.Stat(f.Key); kerr == nil {
				renew = append(renew, n) // a key without its certificate: replace both
			}
			todo = append(todo, n)
			continue
		}
		if err != nil {
			return nil, err
		}
		if pool == nil {
			return nil, fmt.Errorf("%s exists but %s does not: %w", f.Cert, f.CA, ErrForeignCert)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: cert.NotBefore.Add(time.Second),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", f.Cert, ErrForeignCert, err)
		}
		if RoleOf(cert) != n.Role {
			return nil, fmt.Errorf("%s has role %q, want %q: %w", f.Cert, RoleOf(cert), n.Role, ErrBadNode)
		}
		if t.Add(renewBefore).After(cert.NotAfter) {
			todo = append(todo, n)
			renew = append(renew, n)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	for _, n := range renew {
		f := FilesInDir(dir, n.Name)
		for _, p := range []string{f.Cert, f.Key} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("tlsconfig: %w", err)
			}
		}
	}
	return GenerateCerts(CertOptions{Dir: dir, Nodes: todo, Now: now})
}

// readCert parses the first certificate of a PEM file.
func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tlsconfig: %s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: %s: %w", path, err)
	}
	return cert, nil
}
