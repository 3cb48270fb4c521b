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
