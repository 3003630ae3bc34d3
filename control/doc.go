// Package control holds what the master, the chunkservers and the clients share
// about the control channel (gRPC, definitions in package controlpb):
//
//   - error mapping: a server answers control.Errorf(code, ...), a gRPC status
//     whose class (codes.NotFound, codes.InvalidArgument, ...) follows from the
//     controlpb.ErrorCode and whose details carry a controlpb.ErrorDetail with
//     that code; the caller recovers the code with control.Code, also through
//     fmt.Errorf("...: %w", err) wrapping.
//   - connection defaults: Dial and ServerOptions agree on keepalive (the
//     client pings idle connections, the server permits it), message size caps
//     (the control channel never carries bulk data) and a per-call deadline
//     (DefaultCallTimeout is added to every call whose context has none).
//
// Invariant: no control call runs without a deadline. Dial's interceptor adds
// one when the caller forgot; servers should still pass deadlines along.
package control
