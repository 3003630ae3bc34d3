package iotrace

// The BPF object and its Go bindings are committed (iotrace_x86_bpfel.*) so
// building needs no clang; regenerate after editing bpf/iotrace.c with
// go generate (needs clang and libbpf-dev: bpf_helpers.h).
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target amd64 -type hist iotrace bpf/iotrace.c -- -I/usr/include/x86_64-linux-gnu -O2 -g -Wall
