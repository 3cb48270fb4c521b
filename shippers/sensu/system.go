package sensu

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// systemInfo describes the machine (the container) for the entity, read once
// at start from root (normally "/").
func systemInfo(root, hostname string) system {
	s := system{Hostname: hostname, OS: runtime.GOOS, Arch: runtime.GOARCH, Processes: nil}
	if f, err := os.Open(filepath.Join(root, "etc/os-release")); err == nil {
		rel := parseOSRelease(f)
		f.Close()
		s.Platform, s.PlatformVersion = rel["ID"], rel["VERSION_ID"]
		s.PlatformFamily = rel["ID_LIKE"]
		if s.PlatformFamily == "" {
			s.PlatformFamily = rel["ID"]
		}
	}
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
