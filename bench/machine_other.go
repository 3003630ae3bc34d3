//go:build !linux

package bench

func describePlatform(m *Machine, dataDir string) {}
