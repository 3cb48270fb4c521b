package configs

import (
	"syscall"
	"testing"
)

func TestSignalNames(t *testing.T) {
	for _, c := range []struct {
		in   any
		want syscall.Signal
	}{
		{"TERM", syscall.SIGTERM}, {"sigterm", syscall.SIGTERM}, {"15", syscall.SIGTERM}, {int64(15), syscall.SIGTERM},
		{"IOT", syscall.SIGABRT}, {"CLD", syscall.SIGCHLD}, {"POLL", syscall.SIGIO},
		{"RTMIN", 34}, {"SIGRTMIN+1", 35}, {"RTMIN+15", 49}, {"RTMAX-14", 50}, {"RTMAX", 64},
	} {
		got, err := ParseSignal(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSignal(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []any{"RTMIN+31", "RTMAX-31", "RTMIN-1", "RTMIN+x", "NOPE", int64(0), int64(65), "65"} {
		if sig, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%v) = %v, want an error", bad, sig)
		}
	}
	for n := 1; n <= SigRTMax; n++ {
		name := SignalName(syscall.Signal(n))
		if n == 32 || n == 33 {
			if name != "signal 32" && name != "signal 33" {
				t.Errorf("SignalName(%d) = %q", n, name)
			}
			continue
		}
		if got, err := ParseSignal(name); err != nil || got != syscall.Signal(n) {
			t.Errorf("ParseSignal(SignalName(%d) = %q) = %v, %v", n, name, got, err)
		}
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"TERM", "SIGRTMIN+3", "RTMAX-0", "64", "-1", "sigkill", "RTMIN+99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignal(s)
		if err != nil {
			return
		}
		if sig < 1 || sig > SigRTMax {
			t.Fatalf("ParseSignal(%q) = %d, outside 1-64", s, sig)
		}
		if n := SignalName(sig); n[0] != 's' {
			if again, err := ParseSignal(n); err != nil || again != sig {
				t.Fatalf("%q -> %d -> %q -> %d, %v", s, sig, n, again, err)
			}
		}
	})
}
