// Package tlsconfig builds the TLS configurations of the control channel
// from the -tls-cert, -tls-key and -tls-ca files, creates test certificate
// authorities and node certificates (gfs cert), and authorizes gRPC calls by
// the role written in the peer's certificate.
//
// Invariants:
//   - TLS is all or nothing: Files with some but not all of cert, key and CA
//     is an error, never a silent fallback to plaintext.
//   - Both directions authenticate: servers require and verify a client
//     certificate signed by the CA (tls.RequireAndVerifyClientCert), clients
//     verify the server's certificate against the same CA and the dialled
//     host; only TLS 1.3 is spoken.
//   - A certificate's role (master, chunkserver, client) is its subject's
//     first organizational unit. Authorization (Policy) trusts the role only
//     from a chain the TLS handshake verified; a call without one is refused
//     with codes.Unauthenticated, a call from the wrong role with
//     codes.PermissionDenied.
//   - Private keys are written 0600 and never logged.
//
// EnsureCerts keeps a -tls-dir valid across restarts (gfs local): missing
// or expiring certificates are made again, a CA is never replaced.
//
// The data channel is authorized by master-signed capabilities (package
// dataplane/capability); it is encrypted only with -data-tls, which uses
// the same certificates (Server and Client configurations, ALPN
// "gfs-data").
package tlsconfig
