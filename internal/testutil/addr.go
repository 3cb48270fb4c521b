package testutil

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr reserves a loopback port, free for TCP and UDP, for a server a
// test starts later (a program under steward, carbon-cache). It is drawn
// below the kernel's ephemeral range: a port bind(0) gave is the next the
// kernel hands to any process's connect() or bind(0) once released, and
// such ports were taken before the server bound them ("Address already in
// use"); below the range only another explicit choice can land.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const first = 10000 // above the ports of well-known services
	freePorts.Lock()
	defer freePorts.Unlock()
	for range 10000 {
		port := 0
		if lo > first+1000 {
			port = first + rand.IntN(lo-first)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		addr = ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil || freePorts.given[addr] {
			if err == nil {
				pc.Close()
			}
			continue
		}
		pc.Close()
		freePorts.given[addr] = true
		return addr
	}
	t.Fatal("no free loopback port")
	return ""
}

// freePorts are the ports FreeAddr gave in this process, never given twice.
var freePorts = struct {
	sync.Mutex
	given map[string]bool
}{given: map[string]bool{}}
