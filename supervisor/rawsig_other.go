//go:build !(linux && amd64)

package supervisor

import (
	"errors"
	"syscall"
)

// Elsewhere the signals the Go runtime keeps from os/signal stay with it:
// see rawsig.go.
const rawSupported = false

var (
	rawWriteFD uintptr
	rawSelfPID int32
)

func setRawHandler(syscall.Signal) error { return errors.ErrUnsupported }
