//go:build !linux

package oplog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }
