package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeProc makes a proc tree whose self/ns/pid link says ns.
func fakeProc(t *testing.T, ns string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "self", "ns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ns, filepath.Join(dir, "pid")); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestMachineInit: only PID 1 of the machine's first PID namespace is the
// machine's init; PID 1 of a container's namespace, any other pid, and a
// steward without /proc are not (they exit as before).
func TestMachineInit(t *testing.T) {
	first := fakeProc(t, "pid:[4026531836]")
	child := fakeProc(t, "pid:[4026532201]")
	for _, tc := range []struct {
		name string
		pid  int
		proc string
		want bool
	}{
		{"init of the machine", 1, first, true},
		{"PID 1 of a container", 1, child, false},
		{"not PID 1", 42, first, false},
		{"no /proc", 1, filepath.Join(t.TempDir(), "none"), false},
	} {
		if got := machineInit(tc.pid, tc.proc); got != tc.want {
			t.Errorf("%s: machineInit = %v, want %v", tc.name, got, tc.want)
		}
	}
	// This test runs in some namespace of this machine: as a process that
	// is not PID 1 it is never the machine's init.
	if IsMachineInit("/proc") {
		t.Error("IsMachineInit is true for the test process")
	}
	// The constant is the kernel's: where this test runs in the first
	// namespace (the host's, not a container), /proc says the same.
	if ns, err := os.Readlink("/proc/1/ns/pid"); err == nil {
		t.Logf("/proc/1/ns/pid: %s", ns)
	}
}
