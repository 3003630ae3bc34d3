// Package cpuinfo names the CPU a process runs on (model, cores, the
// features the data path's hashing and copying benefit from, cache sizes)
// for the benchmark's machine section and the daemons' start-up log line.
package cpuinfo

import (
	"log/slog"

	"github.com/klauspost/cpuid/v2"
)

// Info describes the CPU. Sizes are bytes; -1 or 0 means unknown.
type Info struct {
	Model         string   `json:"model"`
	PhysicalCores int      `json:"physical_cores"`
	LogicalCores  int      `json:"logical_cores"`
	Features      []string `json:"features"`
	L1DataBytes   int      `json:"l1d_bytes"`
	L2Bytes       int      `json:"l2_bytes"`
	L3Bytes       int      `json:"l3_bytes"`
}

// wanted are the features that matter here: vector copies and hashing
// (AVX2, AVX-512), SHA for TLS and capability HMACs, SSE4.2 and the ARM
// CRC32 instructions for crc32c.
var wanted = []struct {
	name string
	id   cpuid.FeatureID
}{
	{"AVX2", cpuid.AVX2}, {"AVX512F", cpuid.AVX512F}, {"SHA", cpuid.SHA},
	{"SSE4.2", cpuid.SSE42}, {"CRC32", cpuid.CRC32}, {"AESNI", cpuid.AESNI},
}

// Describe reads the CPU's description.
func Describe() Info {
	c := cpuid.CPU
	in := Info{Model: c.BrandName, PhysicalCores: c.PhysicalCores, LogicalCores: c.LogicalCores,
		L1DataBytes: c.Cache.L1D, L2Bytes: c.Cache.L2, L3Bytes: c.Cache.L3, Features: []string{}}
	for _, f := range wanted {
		if c.Supports(f.id) {
			in.Features = append(in.Features, f.name)
		}
	}
	return in
}

// LogAttrs is Info as slog attributes for one structured start-up line.
func (in Info) LogAttrs() []any {
	return []any{slog.String("cpu", in.Model), slog.Int("physical_cores", in.PhysicalCores),
		slog.Int("logical_cores", in.LogicalCores), slog.Any("cpu_features", in.Features),
		slog.Int("l1d_bytes", in.L1DataBytes), slog.Int("l2_bytes", in.L2Bytes), slog.Int("l3_bytes", in.L3Bytes)}
}
