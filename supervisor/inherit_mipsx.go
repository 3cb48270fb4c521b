//go:build mips || mipsle || mips64 || mips64le

package supervisor

import "syscall"

// On MIPS struct sigaction starts with its flags: the inherited
// dispositions are not read there, and programs get the defaults.
func ignoredSignals() []syscall.Signal { return nil }

func setDispositions([]syscall.Signal) error { return nil }
