//go:build !mips && !mipsle && !mips64 && !mips64le

package supervisor

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Programs get the signal state steward was started with, as tini does:
// `nohup steward -- app` must leave app immune to HUP. Go's fork gives a
// child the forking thread's signal mask, which is the inherited one, so
// blocked signals pass on by themselves; but it resets every signal the
// runtime handles to its default, which loses an inherited SIG_IGN, and
// steward itself ignores TTIN and TTOU on a terminal, which a child must
// not keep. os/exec has no hook between fork and exec, so when the
// dispositions differ from the default, programs are started through the
// chain loader (steward re-executed, spawn.go), which sets them right
// before exec.
//
// What the Go runtime has already changed by the time steward's code runs
// cannot be seen: an inherited SIG_IGN of any signal but HUP, INT, CONT,
// TSTP, TTIN, TTOU and 32-34 (the runtime installs its handler over it),
// and an inherited block of the signals the runtime unblocks on every
// thread (HUP, INT, QUIT, ILL, TRAP, ABRT, BUS, FPE, SEGV, STKFLT, TERM,
// CHLD, PROF, URG, SYS, 32-34).

// sigaction's buffer: the handler comes first on every architecture but
// MIPS, and the kernel writes at most this much.
type rawSigaction [8]uintptr

const (
	sigDFL = 0
	sigIGN = 1
)

// ignoredSignals lists the signals whose disposition is SIG_IGN now.
func ignoredSignals() []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= 64; n++ {
		if n == int(syscall.SIGKILL) || n == int(syscall.SIGSTOP) {
			continue
		}
		var old rawSigaction
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(n), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if errno == 0 && old[0] == sigIGN {
			out = append(out, syscall.Signal(n))
		}
	}
	return out
}

// setDispositions, in a process about to exec, ignores the signals in
// ignore and resets to the default those ignored now and not in it. Caught
// signals are left alone: exec resets them.
func setDispositions(ignore []syscall.Signal) error {
	want := map[syscall.Signal]bool{}
	for _, sig := range ignore {
		want[sig] = true
	}
	for n := 1; n <= 64; n++ {
		sig := syscall.Signal(n)
		if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
			continue
		}
		var old rawSigaction
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(n), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); errno != 0 {
			return errno
		}
		var act rawSigaction
		switch {
		case want[sig] && old[0] != sigIGN:
			act[0] = sigIGN
		case !want[sig] && old[0] == sigIGN:
			act[0] = sigDFL
		default:
			continue
		}
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(n), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); errno != 0 {
			return errno
		}
	}
	return nil
}
