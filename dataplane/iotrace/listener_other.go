//go:build !linux

package iotrace

import "errors"

// ErrNoListener: no process listens on the address.
var ErrNoListener = errors.New("no process listens there")

// PIDByAddr needs Linux's /proc; elsewhere it returns ErrUnsupported.
func PIDByAddr(addr string) (int, error) { return 0, ErrUnsupported }
