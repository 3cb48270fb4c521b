package supervisor

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
)

// The Go runtime keeps a few signals from os/signal, yet a PID 1 must catch
// them all:
//
//   - PROF: the runtime's handler takes it for its CPU profiler and never
//     passes it on, so a kill -PROF could not reach the program. The
//     profiler's own ticks (si_code SI_TIMER or SI_KERNEL) still go to the
//     runtime's handler, so steward can still be profiled.
//   - PIPE: the kernel raises it when steward writes to a pipe or socket
//     whose reader went away (a Fluentd that restarted, a closed stdout),
//     with si_code SI_USER and steward's own pid, which os/signal cannot
//     tell from a kill: forwarding those would kill the program.
//   - 32 and 34 (glibc's SIGRTMIN): no handler at all in a Go binary without
//     cgo, so their default action, terminate, would end steward.
//   - ILL, TRAP, BUS, FPE, SEGV, STKFLT and SYS: the runtime passes them to
//     os/signal only when kill(2) or tgkill(2) sent them (si_code SI_USER
//     or SI_TKILL); sent with sigqueue(3) (SI_QUEUE, kill -q) it takes them
//     for a real fault and crashes. steward's handler tells the kernel's
//     faults (si_code above zero) from anything a process sent, and passes
//     only the faults on to the runtime, which still panics or crashes
//     loudly on a real one.
//   - URG: the runtime preempts goroutines by sending URG to its own
//     threads, and os/signal passes those on as if someone had sent them,
//     so a program would get URGs nobody sent it. The runtime's come with
//     tgkill (si_code SI_TKILL) from steward's own pid; those go on to the
//     runtime's handler, untouched, and only the others are forwarded.
//
// No library catches these (os/signal is the only one), so steward installs
// its own handler for them, in assembly (rawsig_linux_amd64.s): it writes
// the siginfo's head (number, code, sender's pid) to a non-blocking pipe,
// which a goroutine reads. Only the siginfo tells a PIPE from one of
// steward's own writes, or the runtime's URG from a kill. Where no such
// handler exists (other architectures) these signals stay with the
// runtime: URG is caught with os/signal, spurious ones included, PIPE and
// PROF are not forwarded, and 32 and 34 terminate steward.
var rawSignals = []syscall.Signal{syscall.SIGPIPE, syscall.SIGURG, syscall.SIGPROF, 32, configs.SigRTMin,
	syscall.SIGILL, syscall.SIGTRAP, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGSTKFLT, syscall.SIGSYS}

// rawRecordSize is how much of each siginfo the handler writes: si_signo,
// si_errno, si_code, padding, si_pid, si_uid. Writes up to PIPE_BUF are
// atomic, so records never interleave.
const rawRecordSize = 24

var (
	rawOnce  sync.Once
	rawErr   error
	rawMu    sync.Mutex
	rawSinks []chan os.Signal
)

// catchRaw delivers the raw signals to c, as signal.Notify would, from the
// first call on.
func catchRaw(c chan os.Signal) error {
	rawOnce.Do(func() { rawErr = installRaw() })
	if rawErr != nil {
		return rawErr
	}
	rawMu.Lock()
	rawSinks = append(rawSinks, c)
	rawMu.Unlock()
	return nil
}

func installRaw() error {
	if !rawSupported {
		return nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: signal pipe: %w", err)
	}
	rawWriteFD = uintptr(p[1])
	r := os.NewFile(uintptr(p[0]), "signals")
	// Ignored first, so that the runtime's own check after a write to a
	// broken stdout returns EPIPE instead of ending steward with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	for _, sig := range rawSignals {
		if err := setRawHandler(sig); err != nil {
			return fmt.Errorf("supervisor: catch %s: %w", configs.SignalName(sig), err)
		}
	}
	go readRaw(r)
	return nil
}

func readRaw(r *os.File) {
	self := int32(os.Getpid())
	buf := make([]byte, 64*rawRecordSize)
	for {
		n, err := r.Read(buf)
		if err != nil {
			return
		}
		for rec := buf[:n]; len(rec) >= rawRecordSize; rec = rec[rawRecordSize:] {
			signo := int32(binary.NativeEndian.Uint32(rec[0:]))
			pid := int32(binary.NativeEndian.Uint32(rec[16:]))
			if pid == self {
				continue // raised by steward's own writes, not sent to it
			}
			rawMu.Lock()
			for _, c := range rawSinks {
				select {
				case c <- syscall.Signal(signo):
				default:
				}
			}
			rawMu.Unlock()
		}
	}
}
