package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// ProbeTLS reports whether the server at addr answers a TLS handshake:
// it connects, sends a ClientHello and looks at the first record that
// comes back. A TLS server answers with a ServerHello (any later failure,
// such as the missing client certificate, still proves TLS); a plaintext
// one closes the connection or answers something that is not a TLS
// record. The probe sends no certificate and no data and verifies nothing
// (InsecureSkipVerify): its answer only explains a failure that already
// happened, it never decides to trust a server. err is set when addr could
// not be reached at all.
func ProbeTLS(ctx context.Context, addr string) (speaksTLS bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, fmt.Errorf("probe %s: %w", addr, err)
	}
	defer nc.Close()
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // probe only, see above
	herr := tc.HandshakeContext(ctx)
	var rh tls.RecordHeaderError
	switch {
	case herr == nil:
		return true, nil
	case errors.As(herr, &rh):
		return false, nil // the answer is not a TLS record
	case isRemoteAlert(herr):
		return true, nil // the server sent a TLS alert
	case ctx.Err() != nil:
		return false, fmt.Errorf("probe %s: %w", addr, ctx.Err())
	default:
		return false, nil // closed on the ClientHello
	}
}

// isRemoteAlert reports a TLS alert received from the peer (crypto/tls
// returns those as a *net.OpError with Op "remote error").
func isRemoteAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}
