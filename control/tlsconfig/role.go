package tlsconfig

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Role is what a certificate allows its holder to be in the cluster.
type Role string

// The roles gfs cert writes into certificates.
const (
	RoleMaster      Role = "master"
	RoleChunkserver Role = "chunkserver"
	RoleClient      Role = "client"
	// RoleCoordinator is a MapReduce coordinator: a GFS client to the
	// master, the server workers register with.
	RoleCoordinator Role = "coordinator"
	// RoleWorker is a MapReduce worker: a GFS client, a coordinator
	// client, and a shuffle server and client to other workers.
	RoleWorker Role = "worker"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	return r == RoleMaster || r == RoleChunkserver || r == RoleClient || r == RoleCoordinator || r == RoleWorker
}

// RoleOf returns the role written in cert (its subject's first
// organizational unit), "" when it has none.
func RoleOf(cert *x509.Certificate) Role {
	if cert == nil || len(cert.Subject.OrganizationalUnit) == 0 {
		return ""
	}
	return Role(cert.Subject.OrganizationalUnit[0])
}

// Peer is the authenticated identity of a gRPC caller.
type Peer struct {
	Name string // the certificate's common name
	Role Role
}

// PeerOf returns the identity of ctx's gRPC peer from the certificate chain
// the TLS handshake verified. ok is false for a peer without TLS or without
// a verified chain.
func PeerOf(ctx context.Context) (Peer, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Peer{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return Peer{}, false
	}
	leaf := ti.State.VerifiedChains[0][0]
	return Peer{Name: leaf.Subject.CommonName, Role: RoleOf(leaf)}, true
}

// Policy says which roles may call which methods of a gRPC server.
// Methods are full names ("/gfs.Master/Register"). A method not listed is
// open to any authenticated peer unless Default is set.
type Policy struct {
	Methods map[string][]Role
	Default []Role // nil = any authenticated peer
}

// check returns nil if ctx's peer may call method.
func (p Policy) check(ctx context.Context, method string) error {
	who, ok := PeerOf(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no verified client certificate")
	}
	allowed, listed := p.Methods[method]
	if !listed {
		allowed = p.Default
	}
	if !listed && allowed == nil {
		return nil
	}
	if slices.Contains(allowed, who.Role) {
		return nil
	}
	return status.Error(codes.PermissionDenied, fmt.Sprintf("%s (role %q) may not call %s (roles %s)",
		who.Name, who.Role, method, joinRoles(allowed)))
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// ServerOptions returns interceptors enforcing p on every unary and
// streaming call. Use only on a server with TLS (Server): without it every
// call is refused as unauthenticated.
func (p Policy) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := p.check(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := p.check(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}
