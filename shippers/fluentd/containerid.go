package fluentd

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ContainerID finds the id of the container steward runs in, the way
// Docker's own tools do: a 64-hex-digit id in the cgroup path
// (cgroup v1, or v2 without a cgroup namespace), else in the source of the
// /etc/hostname, /etc/hosts or /etc/resolv.conf bind mounts (Docker,
// Podman and containerd mount these from the container's own directory).
// root is "/" on a live system; tests pass a fixture tree. Empty when
// none is found.
func ContainerID(root string) string {
	if f, err := os.Open(filepath.Join(root, "proc/self/cgroup")); err == nil {
		id := containerIDFromCgroup(f)
		f.Close()
		if id != "" {
			return id
		}
	}
	if f, err := os.Open(filepath.Join(root, "proc/self/mountinfo")); err == nil {
		defer f.Close()
		return containerIDFromMountinfo(f)
	}
	return ""
}

// containerIDFromCgroup reads /proc/self/cgroup: "hierarchy:controllers:path"
// lines; the last 64-hex token of a path is the container's id
// (/docker/ID, /system.slice/docker-ID.scope,
// /kubepods/.../cri-containerd-ID.scope, /machine.slice/libpod-ID.scope).
func containerIDFromCgroup(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if id := lastHexID(parts[2]); id != "" {
			return id
		}
	}
	return ""
}

// containerIDFromMountinfo reads /proc/self/mountinfo; field 4 is the root
// of the mount within its filesystem and field 5 its mount point.
func containerIDFromMountinfo(r io.Reader) string {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		switch f[4] {
		case "/etc/hostname", "/etc/hosts", "/etc/resolv.conf":
		default:
			continue
		}
		// .../containers/ID/hostname (Docker),
		// .../overlay-containers/ID/userdata/hostname (Podman).
		for _, marker := range []string{"/containers/", "/overlay-containers/"} {
			if i := strings.LastIndex(f[3], marker); i >= 0 {
				rest := f[3][i+len(marker):]
				if j := strings.IndexByte(rest, '/'); j == 64 && isHex(rest[:64]) {
					return rest[:64]
				}
			}
		}
	}
	return ""
}

// lastHexID returns the last run of exactly 64 hex digits in s.
func lastHexID(s string) string {
	end := len(s)
	for end > 0 {
		start := end
		for start > 0 && isHexDigit(s[start-1]) {
			start--
		}
		if end-start == 64 {
			return s[start:end]
		}
		if start == end {
			end-- // not a hex digit: step over it
		} else {
			end = start
		}
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
