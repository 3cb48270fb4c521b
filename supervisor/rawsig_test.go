package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestRawSignals: with steward's handler installed, the runtime still
// preempts a goroutine that never yields (its URGs reach the runtime's
// handler, which would hang every GC otherwise) and none of them is taken
// for a URG someone sent; a URG, PIPE, PROF or RTMIN sent with kill is
// caught, and neither a PIPE raised by steward's own write to a broken pipe
// nor a tick of the CPU profiler is.
func TestRawSignals(t *testing.T) {
	if !rawSupported {
		t.Skip("no raw signal handler on this architecture")
	}
	c := make(chan os.Signal, 64)
	if err := notify(c, syscall.SIGPIPE, syscall.SIGPROF, 34, syscall.SIGURG); err != nil {
		t.Fatal(err)
	}
	// The runtime's handler passes its URGs on to os/signal: seeing them
	// here proves rawHandler handed them over.
	runtimeURG := make(chan os.Signal, 1)
	signal.Notify(runtimeURG, syscall.SIGURG)
	defer signal.Stop(runtimeURG)

	var stop atomic.Bool
	spinning := make(chan struct{})
	go func() {
		close(spinning)
		n := 0
		for !stop.Load() {
			n++ // no call: only an asynchronous preemption stops this loop
		}
		_ = n
	}()
	<-spinning
	collected := make(chan struct{})
	go func() {
		for range 20 {
			runtime.GC() // stops the world: the spinning goroutine must be preempted
		}
		close(collected)
	}()
	select {
	case <-collected:
	case <-time.After(time.Minute):
		t.Fatal("garbage collection hangs: the spinning goroutine was never preempted")
	}
	stop.Store(true)
	select {
	case <-runtimeURG:
	case <-time.After(time.Minute):
		t.Fatal("the runtime's handler never got a preemption URG")
	}

	// The profiler's ticks go to the runtime's handler too, not to c.
	var profile bytes.Buffer
	if err := pprof.StartCPUProfile(&profile); err != nil {
		t.Fatal(err)
	}
	var ru0, ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for ru.Utime.Nano()-ru0.Utime.Nano() < 200e6 { // 20 ticks of CPU time
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	}
	pprof.StopCPUProfile()
	if profile.Len() == 0 {
		t.Fatal("empty CPU profile")
	}

	// A real fault still goes to the runtime, which makes it a panic.
	func() {
		defer func() {
			if _, ok := recover().(runtime.Error); !ok {
				t.Fatal("a nil dereference did not panic with a runtime error")
			}
		}()
		var p *int
		_ = *p
	}()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("write to a pipe without reader succeeded")
	}
	w.Close()

	for _, sig := range []syscall.Signal{syscall.SIGPIPE, syscall.SIGPROF, 34, syscall.SIGURG} {
		// From another process: what steward sends itself is filtered.
		if out, st := runChild(t, os.Environ(), "sh", "-c", fmt.Sprintf("kill -%d %d", sig, os.Getpid())); st.Code() != 0 {
			t.Fatalf("kill: exit %d: %s", st.Code(), out)
		}
		select {
		case got := <-c:
			if got != sig {
				t.Fatalf("got %v, want %v (a preemption URG or steward's own PIPE leaked through)", got, sig)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%v sent with kill was not caught", sig)
		}
	}
}
