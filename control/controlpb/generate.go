// Package controlpb holds the generated protobuf and gRPC code of the control
// channel. Regenerate with `go generate ./control/...` (see README.md,
// Development, for the protoc and plugin versions).
package controlpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative gfs.proto
