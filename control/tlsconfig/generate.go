package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// File names GenerateCerts writes in its directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// CertFile and KeyFile name a node's certificate and key in the directory.
func CertFile(node string) string { return node + ".pem" }

// KeyFile names a node's private key file.
func KeyFile(node string) string { return node + "-key.pem" }

// DefaultValidity is how long generated certificates are valid.
const DefaultValidity = 365 * 24 * time.Hour

// ErrBadNode reports an invalid node name or role.
var ErrBadNode = errors.New("tlsconfig: bad node")

// ErrExists reports a node certificate GenerateCerts would overwrite.
var ErrExists = errors.New("tlsconfig: certificate exists")

// Node is one certificate to create.
type Node struct {
	Name string // file name stem and common name: letters, digits, '.', '_', '-'
	Role Role
}

var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ParseNodes parses a comma-separated list of NAME or NAME:ROLE. Without a
// role, a name starting with "master" is a master, one starting with "cs"
// or "chunkserver" a chunkserver, "coordinator" a MapReduce coordinator,
// "worker" a MapReduce worker, any other a client.
func ParseNodes(s string) ([]Node, error) {
	var nodes []Node
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, role, hasRole := strings.Cut(item, ":")
		n := Node{Name: name, Role: Role(role)}
		if !hasRole {
			switch {
			case strings.HasPrefix(name, "master"):
				n.Role = RoleMaster
			case strings.HasPrefix(name, "cs"), strings.HasPrefix(name, "chunkserver"):
				n.Role = RoleChunkserver
			case strings.HasPrefix(name, "coordinator"):
				n.Role = RoleCoordinator
			case strings.HasPrefix(name, "worker"):
				n.Role = RoleWorker
			default:
				n.Role = RoleClient
			}
		}
		if err := n.check(); err != nil {
			return nil, err
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("node %q listed twice: %w", n.Name, ErrBadNode)
		}
		seen[n.Name] = true
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no nodes in %q: %w", s, ErrBadNode)
	}
	return nodes, nil
}

func (n Node) check() error {
	if !nodeName.MatchString(n.Name) || n.Name == "ca" || strings.HasSuffix(n.Name, "-key") {
		return fmt.Errorf("node name %q (want 1-63 letters, digits, '.', '_', '-'; not \"ca\"): %w", n.Name, ErrBadNode)
	}
	if !n.Role.Valid() {
		return fmt.Errorf("node %q: role %q (want master, chunkserver, client, coordinator or worker): %w", n.Name, n.Role, ErrBadNode)
	}
	return nil
}

// CertOptions tunes GenerateCerts.
type CertOptions struct {
	// Dir receives the files; created if missing. Required.
	Dir string
	// Hosts are the IP addresses and DNS names every node certificate is
	// valid for (besides the node's name); nil = 127.0.0.1, ::1, localhost.
	Hosts []string
	// Nodes are the certificates to create. Required.
	Nodes []Node
	// Validity is the certificates' lifetime; 0 = DefaultValidity.
	Validity time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// GenerateCerts creates, in opts.Dir, a CA (ca.pem, ca-key.pem) unless one
// is there already, and for each node NAME.pem and NAME-key.pem signed by
// it: ECDSA P-256, usable as TLS server and client, with the role in the
// subject's organizational unit. It refuses, before writing anything, to
// overwrite an existing node certificate. It returns the files written.
func GenerateCerts(opts CertOptions) ([]string, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("tlsconfig: no directory: %w", ErrBadNode)
	}
	if len(opts.Nodes) == 0 {
		return nil, fmt.Errorf("tlsconfig: no nodes: %w", ErrBadNode)
	}
	for _, n := range opts.Nodes {
		if err := n.check(); err != nil {
			return nil, err
		}
		for _, f := range []string{CertFile(n.Name), KeyFile(n.Name)} {
			if _, err := os.Stat(filepath.Join(opts.Dir, f)); err == nil {
				return nil, fmt.Errorf("%s: %w (remove it to replace it)", filepath.Join(opts.Dir, f), ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("tlsconfig: %w", err)
			}
		}
	}
	hosts := opts.Hosts
	if hosts == nil {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	var ips []net.IP
	var dns []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	notBefore := now().Add(-time.Hour) // small clock differences between nodes
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tlsconfig: %w", err)
	}

	var written []string
	caCert, caKey, err := loadCA(opts.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		caCert, caKey, err = newCA(notBefore, validity)
		if err == nil {
			err = writePair(opts.Dir, CAFile, CAKeyFile, caCert.Raw, caKey)
			written = append(written, CAFile, CAKeyFile)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, n := range opts.Nodes {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return written, fmt.Errorf("tlsconfig: %w", err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: n.Name, OrganizationalUnit: []string{string(n.Role)}, Organization: []string{"gfs-go"}},
			NotBefore:    notBefore,
			NotAfter:     notBefore.Add(validity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses:  ips,
			DNSNames:     append([]string{n.Name}, dns...),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return written, fmt.Errorf("tlsconfig: sign %s: %w", n.Name, err)
		}
		if err := writePair(opts.Dir, CertFile(n.Name), KeyFile(n.Name), der, key); err != nil {
			return written, err
		}
		written = append(written, CertFile(n.Name), KeyFile(n.Name))
	}
	return written, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}

func newCA(notBefore time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gfs-go test CA", Organization: []string{"gfs-go"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: create CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: %w", err)
	}
	return cert, key, nil
}

// loadCA reads an existing CA from dir (fs.ErrNotExist when there is none).
func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("tlsconfig: existing CA in %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: existing CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, nil, fmt.Errorf("tlsconfig: %s is not an ECDSA CA: %w", filepath.Join(dir, CAFile), ErrBadCA)
	}
	return cert, key, nil
}

// writePair writes a certificate (0644) and its key (0600), each through a
// temporary file renamed into place.
func writePair(dir, certName, keyName string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("tlsconfig: %w", err)
	}
	if err := writeFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, certName), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("tlsconfig: %w", err)
	}
	if err := os.Chmod(tmp, perm); err != nil { // umask may have widened nothing, but be sure
		os.Remove(tmp)
		return fmt.Errorf("tlsconfig: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tlsconfig: %w", err)
	}
	return nil
}
