package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	return b, nil
}

// Environ reads the environment block of pid under root ("/proc"):
// NUL-terminated KEY=VALUE entries.
func Environ(root string, pid int) ([]byte, error) {
	return readFile(root + "/" + strconv.Itoa(pid) + "/environ")
}

// Children lists the processes whose parent is ppid: from the kernel's
// per-thread children lists, or by scanning root ("/proc") where the kernel
// lacks them (CONFIG_PROC_CHILDREN).
func Children(root string, ppid int) []int {
	lists, _ := filepath.Glob(root + "/" + strconv.Itoa(ppid) + "/task/*/children")
	if len(lists) > 0 {
		var pids []int
		for _, l := range lists {
			b, _ := os.ReadFile(l)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return pids
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(root, pid)
		if err == nil && st.PPID == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Self is the pid of the calling process as root ("/proc") numbers it:
// the pid namespace of that proc mount may not be the caller's (a process
// that unshared its pid namespace and kept the outer /proc).
func Self(root string) (int, error) {
	l, err := os.Readlink(root + "/self")
	if err != nil {
		return 0, fmt.Errorf("proc: %w", err)
	}
	return strconv.Atoi(l)
}

// LocalPID is the pid that the innermost pid namespace of the process pid
// (as root numbers it) gives it: the last NSpid of its status, the number
// kill(2) takes from a process of that namespace. pid itself when the
// kernel does not say (before Linux 4.1).
func LocalPID(root string, pid int) int {
	b, err := os.ReadFile(root + "/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return pid
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
					return n
				}
			}
		}
	}
	return pid
}
