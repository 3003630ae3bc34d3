package main

import "path/filepath"

// absDir returns dir as an absolute path (for messages users copy).
func absDir(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}
