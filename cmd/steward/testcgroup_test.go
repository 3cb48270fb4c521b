package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCgroup is a fresh cgroup for one steward, as a container runtime
// would make: its own memory, CPU and pids limits.
type testCgroup struct {
	dirs []string // one per hierarchy (v1 controllers, the v2 tree)
}

// Limits the test sets and then expects to read back from Graphite.
const (
	cgMemoryLimit = 256 << 20
	cgCPUQuota    = 50000 // µs per 100000: half a core
	cgPidsLimit   = 64
)

// newTestCgroup makes the cgroup: on a v1 or hybrid host one directory
// per controller (plus one in the v2 tree, which accounts pressure), on a
// v2 host one directory below the root. It is removed when the test ends.
func newTestCgroup(t *testing.T) *testCgroup {
	t.Helper()
	name := fmt.Sprintf("steward-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	cg := &testCgroup{}
	t.Cleanup(func() { cg.remove(t) })
	mkdir := func(dir string) string {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("cgroup: %v (the tests run as root)", err)
		}
		cg.dirs = append(cg.dirs, dir)
		return dir
	}
	write := func(dir, file, value string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			t.Fatalf("cgroup: %v", err)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.stat"); err == nil { // v1 or hybrid
		for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio"} {
			root := "/sys/fs/cgroup/" + ctrl
			if _, err := os.Stat(root); err != nil {
				continue
			}
			// cpu and cpuacct may be one hierarchy with two names.
			if real, _ := filepath.EvalSymlinks(root); cg.has(real, name) {
				continue
			}
			dir := mkdir(filepath.Join(root, name))
			switch ctrl {
			case "memory":
				write(dir, "memory.limit_in_bytes", fmt.Sprint(cgMemoryLimit))
			case "cpu":
				write(dir, "cpu.cfs_period_us", "100000")
				write(dir, "cpu.cfs_quota_us", fmt.Sprint(cgCPUQuota))
			case "pids":
				write(dir, "pids.max", fmt.Sprint(cgPidsLimit))
			}
		}
		if _, err := os.Stat("/sys/fs/cgroup/unified/cgroup.procs"); err == nil {
			mkdir("/sys/fs/cgroup/unified/" + name)
		}
		return cg
	}
	// v2: controllers must be enabled in the parent, the root here.
	b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	for _, c := range []string{"cpu", "memory", "pids", "io"} {
		if strings.Contains(string(b), c) {
			os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+"+c), 0o644)
		}
	}
	dir := mkdir("/sys/fs/cgroup/" + name)
	write(dir, "memory.max", fmt.Sprint(cgMemoryLimit))
	write(dir, "cpu.max", fmt.Sprintf("%d 100000", cgCPUQuota))
	write(dir, "pids.max", fmt.Sprint(cgPidsLimit))
	return cg
}

func (cg *testCgroup) has(real, name string) bool {
	for _, d := range cg.dirs {
		if r, _ := filepath.EvalSymlinks(filepath.Dir(d)); r == real {
			return true
		}
	}
	return false
}

// wrap is the command that does what a runtime does before it starts a
// container's PID 1: it moves itself into the cgroup, and mounts a /proc
// of the new PID namespace in a mount namespace of its own, then execs
// steward (staying PID 1).
func (cg *testCgroup) wrap() []string {
	w := []string{"sh", "-c", `while [ "$1" != -- ]; do echo 0 > "$1/cgroup.procs" || exit 125; shift; done; shift
exec unshare --mount --propagation private -- sh -c 'mount -t proc proc /proc && exec "$@"' sh "$@"`, "sh"}
	return append(append(w, cg.dirs...), "--")
}

// remove deletes the cgroup once its processes are gone, killing any
// left by a failed test.
func (cg *testCgroup) remove(t *testing.T) {
	for _, dir := range cg.dirs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("cgroup %s not removed: %v", dir, err)
				break
			}
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				var pid int
				fmt.Sscan(f, &pid)
				if pid > 0 {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
