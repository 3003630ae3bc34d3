package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// ErrIncomplete reports Files with some but not all of cert, key and CA.
var ErrIncomplete = errors.New("tlsconfig: -tls-cert, -tls-key and -tls-ca must be given together")

// ErrBadCA reports a CA file without any usable certificate.
var ErrBadCA = errors.New("tlsconfig: no certificate in CA file")

// Files names the PEM files of one node. The zero value means TLS off.
type Files struct {
	Cert string // the node's certificate chain (-tls-cert)
	Key  string // its private key (-tls-key)
	CA   string // the CA that signs every node of the cluster (-tls-ca)
}

// Enabled reports whether any file is named (Check then tells whether all are).
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Check returns ErrIncomplete unless all or none of the files are named.
func (f Files) Check() error {
	if f.Enabled() && (f.Cert == "" || f.Key == "" || f.CA == "") {
		return ErrIncomplete
	}
	return nil
}

// load reads the key pair and the CA pool.
func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	if err := f.Check(); err != nil {
		return tls.Certificate{}, nil, err
	}
	if !f.Enabled() {
		return tls.Certificate{}, nil, fmt.Errorf("tlsconfig: no files named: %w", ErrIncomplete)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		// The error names files and PEM problems, never key bytes.
		return tls.Certificate{}, nil, fmt.Errorf("tlsconfig: load key pair %s, %s: %w", f.Cert, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tlsconfig: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("tlsconfig: %s: %w", f.CA, ErrBadCA)
	}
	return cert, pool, nil
}

// Server returns the configuration of a control-channel server: TLS 1.3,
// the node's certificate, and client certificates required and verified
// against the CA. Nil (and no error) when f names no files.
func Server(f Files) (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}, nil
}

// Client returns the configuration of a control-channel client: TLS 1.3,
// the node's certificate offered to the server, the server verified
// against the CA (and, by gRPC, against the dialled host). Nil (and no
// error) when f names no files.
func Client(f Files) (*tls.Config, error) {
	if !f.Enabled() {
		return nil, nil
	}
	cert, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
	}, nil
}

// ServerCredentials is Server as gRPC transport credentials (for
// grpc.Creds); nil (and no error) when f names no files.
func ServerCredentials(f Files) (credentials.TransportCredentials, error) {
	cfg, err := Server(f)
	if cfg == nil || err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// ClientCredentials is Client as gRPC transport credentials (for
// grpc.WithTransportCredentials); nil (and no error) when f names no files.
func ClientCredentials(f Files) (credentials.TransportCredentials, error) {
	cfg, err := Client(f)
	if cfg == nil || err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// HTTP returns the configuration of a daemon's operator HTTP listener:
// like Server, but a client certificate is only verified when given, so a
// metrics scraper or a browser without one can read /metrics and the status
// page while /debug/pprof/ still demands one. Nil when f names no files.
func HTTP(f Files) (*tls.Config, error) {
	cfg, err := Server(f)
	if cfg != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, err
}
