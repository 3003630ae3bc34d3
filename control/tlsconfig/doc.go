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
// The data channel does not use TLS (its payload goes out with sendfile,
// zero-copy): requests there are authorized by master-signed capabilities
// (package dataplane/capability) and data integrity rests on the block
// checksums; payload confidentiality in transit is not provided.
package tlsconfig
