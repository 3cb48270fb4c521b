package sensu

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// systemInfo describes the machine (the container) for the entity, read once
// at start from root (normally "/"), as sensu-agent describes it through
// gopsutil: platform, family and full version, libc, virtualization.
func systemInfo(root, hostname string, getenv func(string) string) system {
	s := system{Hostname: hostname, OS: runtime.GOOS, Arch: runtime.GOARCH, Processes: nil}
	if f, err := os.Open(filepath.Join(root, "etc/os-release")); err == nil {
		rel := parseOSRelease(f)
		f.Close()
		s.Platform, s.PlatformFamily = rel["ID"], platformFamily(rel["ID"], rel["ID_LIKE"])
		s.PlatformVersion = platformVersion(root, rel["ID"], rel["VERSION_ID"])
	}
	s.LibCType = libcType(root)
	s.VMSystem, s.VMRole = virtualization(root, getenv)
	s.Network.Interfaces = []networkInterface{}
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		ni := networkInterface{Name: ifc.Name, MAC: ifc.HardwareAddr.String(), Addresses: []string{}}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ni.Addresses = append(ni.Addresses, a.String())
		}
		s.Network.Interfaces = append(s.Network.Interfaces, ni)
	}
	return s
}

// parseOSRelease reads os-release(5) KEY=value lines.
func parseOSRelease(r io.Reader) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		out[k] = strings.Trim(v, `"'`)
	}
	return out
}

// platformFamily names the family as gopsutil does: debian for Debian and
// Ubuntu, rhel for the Red Hat clones, suse, else the distribution itself.
func platformFamily(id, like string) string {
	words := strings.Fields(like)
	for _, fam := range []string{"debian", "rhel", "suse", "arch"} {
		if id == fam {
			return fam
		}
		for _, w := range words {
			if w == fam {
				return fam
			}
		}
	}
	if id == "fedora" || id == "alpine" {
		return id
	}
	if len(words) > 0 {
		return words[0]
	}
	return id
}

// platformVersion is the full version, as gopsutil reads it: Debian's point
// release from /etc/debian_version (12.11, where os-release says 12),
// Alpine's from /etc/alpine-release, else os-release's VERSION_ID.
func platformVersion(root, id, versionID string) string {
	file := map[string]string{"debian": "etc/debian_version", "alpine": "etc/alpine-release"}[id]
	if file != "" {
		if b, err := os.ReadFile(filepath.Join(root, file)); err == nil {
			v := strings.TrimSpace(string(b))
			if v != "" && v[0] >= '0' && v[0] <= '9' {
				return v
			}
		}
	}
	return versionID
}

// libcType tells glibc from musl by the dynamic loader the image carries
// (sensu-agent asks `ldd --version`; steward runs no program for it, and an
// image FROM scratch has neither: "").
func libcType(root string) string {
	if m, _ := filepath.Glob(filepath.Join(root, "lib/ld-musl-*.so.1")); len(m) > 0 {
		return "musl"
	}
	for _, pattern := range []string{"lib*/ld-linux*.so.*", "lib/*/ld-linux*.so.*", "usr/lib*/ld-linux*.so.*",
		"lib*/libc.so.6", "lib/*/libc.so.6", "usr/lib/*/libc.so.6"} {
		if m, _ := filepath.Glob(filepath.Join(root, pattern)); len(m) > 0 {
			return "glibc"
		}
	}
	return ""
}

// virtualization names what the entity runs in, as gopsutil's
// Virtualization does (vm_system, vm_role), with Kubernetes and Podman
// told apart from Docker: container markers first, then a hypervisor.
func virtualization(root string, getenv func(string) string) (system, role string) {
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	cgroup, _ := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	switch {
	case getenv("KUBERNETES_SERVICE_HOST") != "" || exists("var/run/secrets/kubernetes.io") || bytes.Contains(cgroup, []byte("kubepods")):
		return "kubernetes", "guest"
	case exists(".dockerenv") || bytes.Contains(cgroup, []byte("docker")):
		return "docker", "guest"
	case exists("run/.containerenv") || getenv("container") == "podman":
		return "podman", "guest"
	case getenv("container") == "lxc" || bytes.Contains(cgroup, []byte("lxc")):
		return "lxc", "guest"
	case bytes.Contains(cgroup, []byte("containerd")):
		return "containerd", "guest"
	}
	if vendor, err := os.ReadFile(filepath.Join(root, "sys/class/dmi/id/sys_vendor")); err == nil {
		product, _ := os.ReadFile(filepath.Join(root, "sys/class/dmi/id/product_name"))
		id := strings.ToLower(string(vendor) + " " + string(product))
		for _, vm := range []struct{ marker, name string }{{"qemu", "kvm"}, {"kvm", "kvm"}, {"vmware", "vmware"},
			{"virtualbox", "vbox"}, {"xen", "xen"}, {"microsoft corporation virtual", "hyperv"}, {"amazon ec2", "kvm"},
			{"google compute engine", "kvm"}} {
			if strings.Contains(id, vm.marker) {
				return vm.name, "guest"
			}
		}
	}
	return "", ""
}
