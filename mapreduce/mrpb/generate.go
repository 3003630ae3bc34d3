// Package mrpb holds the MapReduce coordinator's gRPC protocol: workers
// register, heartbeat and report attempts; submitters submit and follow
// jobs. Generated from mr.proto.
package mrpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative mr.proto
