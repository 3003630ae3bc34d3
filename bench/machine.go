package bench

import (
	"os"
	"runtime"

	"github.com/gfs-go/gfs/internal/cpuinfo"
)

// Machine describes where a run happened.
type Machine struct {
	Hostname    string `json:"hostname"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	Cores       int    `json:"cores"`
	CPUModel    string `json:"cpu_model"`
	MemoryBytes int64  `json:"memory_bytes"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	DataDir     string `json:"data_dir"`
	// Disk describes the device and file system holding DataDir
	// ("/dev/vda ext4 rotational=0 size=270GB", "unknown" when not found).
	Disk string `json:"disk"`
	// LoadAvg is the 1, 5 and 15 minute load average when the run started
	// ("" where unknown): figures taken on a busy machine say so.
	LoadAvg string `json:"load_avg"`
	// CPU names the processor's model, core counts, relevant features
	// (AVX2, AVX-512, SHA, SSE4.2/CRC32) and cache sizes.
	CPU cpuinfo.Info `json:"cpu"`
}

// DescribeMachine gathers Machine for a run whose data lives in dataDir.
// Missing pieces are left empty or "unknown"; it never fails.
func DescribeMachine(dataDir string) Machine {
	host, _ := os.Hostname()
	m := Machine{
		Hostname:  host,
		OS:        runtime.GOOS,
		Arch:      runtime.GOARCH,
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		DataDir:   dataDir,
		Disk:      "unknown",
		CPU:       cpuinfo.Describe(),
	}
	describePlatform(&m, dataDir)
	return m
}
