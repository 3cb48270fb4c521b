package configs

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Real-time signals as glibc programs number them: SIGRTMIN is 34, because
// glibc keeps 32 and 33 for itself (and the Go runtime uses 33 likewise).
const (
	SigRTMin = 34
	SigRTMax = 64
)

// SignalName is the name of sig as kill -l writes it, with SIG: SIGTERM,
// SIGRTMIN+3, SIGRTMAX; "signal 32" for the ones without a name.
func SignalName(sig syscall.Signal) string {
	switch n := int(sig); {
	case n == SigRTMin:
		return "SIGRTMIN"
	case n == SigRTMax:
		return "SIGRTMAX"
	case n > SigRTMin && n <= (SigRTMin+SigRTMax)/2:
		return "SIGRTMIN+" + strconv.Itoa(n-SigRTMin)
	case n > (SigRTMin+SigRTMax)/2 && n < SigRTMax:
		return "SIGRTMAX-" + strconv.Itoa(SigRTMax-n)
	}
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// signalByName reads a name already upper-cased and prefixed with SIG.
func signalByName(name string) syscall.Signal {
	if sig := unix.SignalNum(name); sig != 0 {
		return sig
	}
	switch name {
	case "SIGIOT":
		return syscall.SIGABRT
	case "SIGPOLL":
		return syscall.SIGIO
	case "SIGCLD":
		return syscall.SIGCHLD
	case "SIGRTMIN":
		return SigRTMin
	case "SIGRTMAX":
		return SigRTMax
	}
	for _, base := range []struct {
		prefix string
		from   int
		sign   int
	}{{"SIGRTMIN+", SigRTMin, 1}, {"SIGRTMAX-", SigRTMax, -1}} {
		if off, ok := strings.CutPrefix(name, base.prefix); ok {
			n, err := strconv.Atoi(off)
			sig := base.from + base.sign*n
			if err == nil && n >= 0 && sig >= SigRTMin && sig <= SigRTMax {
				return syscall.Signal(sig)
			}
		}
	}
	return 0
}

// NotForwarded says why steward can never forward sig to a program, or
// returns nil when it can (which a rewrite table may then change). KILL
// and STOP cannot be caught; CHLD is the reaper's; 32 and 33 belong to the
// C library and the Go runtime (glibc numbers its SIGRTMIN 34 for this).
func NotForwarded(sig syscall.Signal) error {
	switch sig {
	case syscall.SIGKILL, syscall.SIGSTOP:
		return fmt.Errorf("%s cannot be caught, so it is never forwarded", SignalName(sig))
	case syscall.SIGCHLD:
		return fmt.Errorf("%s is steward's own (it reaps children); it is never forwarded", SignalName(sig))
	case 32, 33:
		return fmt.Errorf("signal %d is reserved by the C library and the Go runtime; it is never forwarded", int(sig))
	}
	return nil
}
