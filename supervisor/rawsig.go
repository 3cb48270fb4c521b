package supervisor

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stewardhq/steward/configs"
)

// steward catches signals with its own handler (rawsig_linux_amd64.s), not
// with os/signal, for two reasons.
//
// Cost. signal.Notify makes a round trip to the runtime's signal thread for
// every signal it enables (runtime.sigenable: a channel send and receive
// between two OS threads, 15 to 40 µs each here), and a PID 1 catches every
// signal: 55 of them took 1.0 to 1.3 ms of each start, before the first
// fork (a trace of the path from main to the fork; bench/initbench,
// paired: the start went from 1.44x to 1.00x of the minimal Go init, and
// reaping 10,000 zombies from 91 to 62 ms). Installing a handler is one
// rt_sigaction each, about 1 µs: the whole set costs under 0.1 ms, and no
// signal thread is started.
//
// Reach. The Go runtime keeps a few signals from os/signal, yet a PID 1
// must catch them all:
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
// No library does either (os/signal is the only one), hence the handler:
// it marks the signal pending in a 64-bit set and writes one byte to a
// non-blocking pipe, which a goroutine reads; the goroutine takes the whole
// set and hands each signal to the channels that asked for it, as
// signal.Notify would. Like the runtime's own queue, a set keeps each
// distinct signal pending at most once, so a flood of one signal (URGs,
// CHLDs of 10,000 orphans) can never crowd out another, and a full pipe
// loses nothing: a wake-up is already pending.
//
// Where no such handler exists (other architectures), signal.Notify
// catches the rest: URG with the runtime's own included, the fault signals
// a process sent with kill (sigqueue'd ones still crash steward), PIPE and
// PROF not at all (the runtime keeps PROF; steward's own PIPEs could not
// be told from a kill), and 32 terminates steward.
var osSignalKeeps = []syscall.Signal{syscall.SIGPIPE, syscall.SIGPROF}

// rawPending is the set of signals caught and not yet handed over: bit n-1
// for signal n. rawHandler sets bits; readRaw takes them.
var rawPending uint64

var (
	rawOnce  sync.Once
	rawErr   error
	rawMu    sync.Mutex
	rawSinks [configs.SigRTMax + 1][]chan<- os.Signal
)

// notify delivers sigs to c, as signal.Notify does: without blocking, a
// signal that finds c full is dropped. With steward's handler every signal
// can be caught; without it (other architectures) the runtime's own are
// left alone.
func notify(c chan<- os.Signal, sigs ...syscall.Signal) error {
	if !rawSupported {
		var caught []os.Signal
		for _, sig := range sigs {
			if !slices.Contains(osSignalKeeps, sig) {
				caught = append(caught, sig)
			}
		}
		signal.Notify(c, caught...)
		return nil
	}
	rawOnce.Do(func() { rawErr = startRaw() })
	if rawErr != nil {
		return rawErr
	}
	rawMu.Lock()
	defer rawMu.Unlock()
	for _, sig := range sigs {
		if len(rawSinks[sig]) == 0 {
			if err := setRawHandler(sig); err != nil {
				return fmt.Errorf("supervisor: catch %s: %w", configs.SignalName(sig), err)
			}
		}
		rawSinks[sig] = append(rawSinks[sig], c)
	}
	return nil
}

// startRaw makes the handler's pipe and starts its reader.
func startRaw() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("supervisor: signal pipe: %w", err)
	}
	rawWriteFD = uintptr(p[1])
	rawSelfPID = int32(unix.Getpid())
	// Ignored first, so that the runtime's own check after a write to a
	// broken stdout returns EPIPE instead of ending steward with SIGPIPE;
	// the handler installed over it still sees every PIPE someone sends.
	signal.Ignore(syscall.SIGPIPE)
	// 32 belongs to the C library and is never forwarded, but a Go binary
	// without cgo leaves it at its default, terminate: caught, with no
	// channel to go to, it is dropped.
	if err := setRawHandler(32); err != nil {
		return fmt.Errorf("supervisor: catch 32: %w", err)
	}
	go readRaw(os.NewFile(uintptr(p[0]), "signals"))
	return nil
}

func readRaw(r *os.File) {
	buf := make([]byte, 64)
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
		pending := atomic.SwapUint64(&rawPending, 0)
		for n := 1; pending != 0; n++ {
			if pending&1 != 0 {
				rawMu.Lock()
				for _, c := range rawSinks[n] {
					select {
					case c <- syscall.Signal(n):
					default:
					}
				}
				rawMu.Unlock()
			}
			pending >>= 1
		}
	}
}
