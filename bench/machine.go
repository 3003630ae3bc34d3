package bench

import (
	"os"
	"runtime"
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
	}
	describePlatform(&m, dataDir)
	return m
}
