package tlsconfig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustNodes(t *testing.T, s string) []Node {
	t.Helper()
	n, err := ParseNodes(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEnsureCerts: the first call makes a CA and every certificate, a
// second changes nothing, an expiring node certificate is renewed with
// the same CA, and the others stay.
func TestEnsureCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	nodes := mustNodes(t, "master,client,cs0,cs1")
	written, err := EnsureCerts(dir, nodes, nil)
	if err != nil || len(written) != 2+2*len(nodes) {
		t.Fatalf("first EnsureCerts: %v, wrote %v", err, written)
	}
	ca := readFile(t, filepath.Join(dir, CAFile))
	master := readFile(t, filepath.Join(dir, CertFile("master")))
	if written, err := EnsureCerts(dir, nodes, nil); err != nil || len(written) != 0 {
		t.Fatalf("second EnsureCerts: %v, wrote %v", err, written)
	}
	// cs0 about to expire: renewed, nothing else.
	for _, f := range []string{CertFile("cs0"), KeyFile("cs0")} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := GenerateCerts(CertOptions{Dir: dir, Nodes: mustNodes(t, "cs0"), Validity: 3 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	written, err = EnsureCerts(dir, nodes, nil)
	if err != nil || len(written) != 2 {
		t.Fatalf("EnsureCerts with an expiring cs0: %v, wrote %v", err, written)
	}
	cert, err := readCert(filepath.Join(dir, CertFile("cs0")))
	if err != nil || time.Until(cert.NotAfter) < 300*24*time.Hour {
		t.Fatalf("cs0 not renewed: %v %v", cert.NotAfter, err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), ca) || !bytes.Equal(readFile(t, filepath.Join(dir, CertFile("master"))), master) {
		t.Fatal("renewing cs0 changed the CA or another certificate")
	}
	if _, err := Server(FilesInDir(dir, "cs0")); err != nil {
		t.Fatalf("renewed cs0 does not load: %v", err)
	}
	// A certificate of another CA in the directory: refused, not replaced.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := EnsureCerts(other, mustNodes(t, "client"), nil); err != nil {
		t.Fatal(err)
	}
	foreign := readFile(t, filepath.Join(other, CertFile("client")))
	if err := os.WriteFile(filepath.Join(dir, CertFile("client")), foreign, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCerts(dir, nodes, nil); !errors.Is(err, ErrForeignCert) {
		t.Fatalf("foreign client.pem: %v, want ErrForeignCert", err)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CertFile("client"))), foreign) {
		t.Fatal("foreign certificate replaced")
	}
}

// TestEnsureCertsExpiredCA: an expired CA is an error and nothing is
// written: replacing it would lock out every node that trusts it.
func TestEnsureCertsExpiredCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	past := func() time.Time { return time.Now().Add(-48 * time.Hour) }
	if _, err := GenerateCerts(CertOptions{Dir: dir, Nodes: mustNodes(t, "master"), Validity: time.Hour, Now: past}); err != nil {
		t.Fatal(err)
	}
	ca := readFile(t, filepath.Join(dir, CAFile))
	written, err := EnsureCerts(dir, mustNodes(t, "master,client"), nil)
	if !errors.Is(err, ErrCAExpired) || len(written) != 0 {
		t.Fatalf("expired CA: %v, wrote %v", err, written)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, CAFile)), ca) {
		t.Fatal("expired CA replaced")
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile("client"))); !os.IsNotExist(err) {
		t.Fatalf("client certificate written under an expired CA: %v", err)
	}
}
