package supervisor

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// initPIDNamespace is how /proc names the machine's first PID namespace:
// its inode number is fixed (PROC_PID_INIT_INO in the kernel's
// include/linux/proc_ns.h), every namespace made later gets another.
const initPIDNamespace = "pid:[4026531836]"

// IsMachineInit reports whether steward is the init of the whole machine
// (the kernel's PID 1, as when it is a VM's or an initramfs's /init) rather
// than PID 1 of a container's PID namespace. The kernel panics when the
// machine's init exits, so such a steward must power the machine off
// instead (PowerOff). procRoot is where proc is mounted ("/proc"); when it
// is not mounted, the namespace cannot be told and the answer is false.
func IsMachineInit(procRoot string) bool {
	return machineInit(os.Getpid(), procRoot)
}

func machineInit(pid int, procRoot string) bool {
	if pid != 1 {
		return false
	}
	ns, err := os.Readlink(filepath.Join(procRoot, "self", "ns", "pid"))
	return err == nil && ns == initPIDNamespace
}

// PowerOff syncs the file systems and powers the machine off, as an init
// system does at the end of its shutdown; it returns only on failure (no
// CAP_SYS_BOOT, say).
func PowerOff() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("supervisor: power off: %w", err)
	}
	return nil
}
