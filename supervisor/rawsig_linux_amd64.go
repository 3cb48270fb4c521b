//go:build linux && amd64

package supervisor

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Set by rawsig_linux_amd64.s: the ABI0 entry points of the handler and of
// its return trampoline.
var rawHandlerPC, rawRestorerPC uintptr

// Read by rawHandler: the write end of its pipe, steward's pid, and the
// runtime's own handler (one for every signal), for its URG, PROF and
// faults.
var (
	rawWriteFD     uintptr
	rawSelfPID     int32
	runtimeHandler uintptr
)

func rawHandler()
func rawRestorer()

// sigactiont is the kernel's struct sigaction on amd64.
type sigactiont struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	saSiginfo  = 0x4
	saRestorer = 0x04000000
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
)

const rawSupported = true

func rtSigaction(sig syscall.Signal, act, old *sigactiont) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// setRawHandler makes rawHandler the handler of sig. For the signals it
// passes on to the runtime (URG, PROF, the faults) it first keeps the
// runtime's handler, the same for all. All signals are blocked while it
// runs, as they are for the runtime's handler.
func setRawHandler(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGURG, syscall.SIGPROF, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS,
		syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS:
		var old sigactiont
		if err := rtSigaction(sig, nil, &old); err != nil {
			return err
		}
		if old.handler <= 1 || runtimeHandler != 0 && old.handler != runtimeHandler {
			return errors.New("the Go runtime does not handle it with its one handler")
		}
		runtimeHandler = old.handler
	}
	sa := sigactiont{handler: rawHandlerPC, flags: saSiginfo | saOnstack | saRestorer | saRestart,
		restorer: rawRestorerPC, mask: ^uint64(0)}
	return rtSigaction(sig, &sa, nil)
}
