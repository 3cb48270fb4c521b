package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
)

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestHTTPConnectionsBounded: idle connections to the HTTP endpoint cannot
// take steward's descriptors: beyond httpMaxConns they wait in the kernel's
// backlog (issue 10, defect 7).
func TestHTTPConnectionsBounded(t *testing.T) {
	addr := freeAddr(t)
	in := start(t, runOpts{config: fmt.Sprintf(`
[http]
addr = %q

[programs.app]
main = true
command = ["sleep", "1000"]
`, addr)})
	in.waitHTTP()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	baseline := openFDs(t, in.pid())
	const idle = 200
	for range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// The backlog is first in, first out: once this request is answered,
	// steward has accepted every idle connection dialled before it, or
	// holds them back.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err = client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := openFDs(t, in.pid()); n > baseline+httpMaxConns+8 {
		t.Fatalf("steward has %d descriptors open with %d idle connections (%d before): no connection limit", n, idle, baseline)
	}
}
