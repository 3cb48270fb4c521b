package collectors

import (
	"strings"
	"testing"
)

func netTree(t *testing.T, fixtureDir string) *tree {
	tr := newTree(t)
	tr.proc("621", "0::/\n", "", fixtureDir+"/proc-net")
	return tr
}

func TestNetstat(t *testing.T) {
	n, err := NewNetstat(NetstatConfig{Root: netTree(t, v2Fixture).root, ExcludeInterfaces: []string{"lo"}}, discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := collect(t, n)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Counter, map[string]float64{
		"net.interface.receive_bytes_total;interface=eth0":    625,
		"net.interface.receive_packets_total;interface=eth0":  10,
		"net.interface.transmit_bytes_total;interface=eth0":   1473,
		"net.interface.transmit_packets_total;interface=eth0": 18,
		"net.interface.receive_drops_total;interface=ifb0":    0,
		"net.tcp.active_opens_total":                          9,
		"net.tcp.passive_opens_total":                         2,
		"net.tcp.attempt_fails_total":                         6,
		"net.tcp.in_segs_total":                               30,
		"net.tcp.out_segs_total":                              31,
		"net.tcp.out_rsts_total":                              0,
		"net.tcp.timeouts_total":                              2,
		"net.tcp.rcvq_drops_total":                            0,
		"net.tcp.listen_overflows_total":                      0,
		"net.udp.no_ports_total":                              20,
		"net.udp.in_errors_total":                             0,
	})
	s.want(t, Gauge, map[string]float64{
		"net.tcp.curr_estab":                    0,
		"net.sockstat.sockets_used":             8,
		"net.sockstat.tcp_inuse":                1,
		"net.sockstat.tcp_tw":                   2,
		"net.sockstat.tcp_alloc":                1,
		"net.sockstat.tcp_mem_bytes":            0,
		"net.sockstat.udp_inuse":                0,
		"net.tcp.connections;state=listen":      1,
		"net.tcp.connections;state=time_wait":   2,
		"net.tcp.connections;state=established": 0,
		"net.tcp.connections;state=syn_recv":    0,
		"net.tcp.connections;state=close_wait":  0,
	})
	s.absent(t, "net.interface.receive_bytes_total;interface=lo")
}

func TestNetstatLoopbackIncluded(t *testing.T) {
	n, err := NewNetstat(NetstatConfig{Root: netTree(t, v1Fixture).root, ExcludeInterfaces: []string{"ifb*"}}, discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := collect(t, n)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s["net.interface.receive_bytes_total;interface=lo"]; !ok {
		t.Errorf("lo missing: %v", s.names())
	}
	for k := range s {
		if strings.Contains(k, "interface=ifb") {
			t.Errorf("%s not excluded", k)
		}
	}
	s.want(t, Counter, map[string]float64{"net.tcp.active_opens_total": 626, "net.tcp.estab_resets_total": 41, "net.tcp.retrans_segs_total": 2})
}

// TestNetstatNoIPv6: a kernel without IPv6 has no tcp6; that is not an error.
func TestNetstatNoIPv6(t *testing.T) {
	tr := netTree(t, v2Fixture)
	tr.remove("proc/621/net/tcp6")
	n, _ := NewNetstat(NetstatConfig{Root: tr.root}, discard)
	s, err := collect(t, n)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Gauge, map[string]float64{"net.tcp.connections;state=listen": 1})
}

func TestNetstatBadPattern(t *testing.T) {
	if _, err := NewNetstat(NetstatConfig{Root: t.TempDir(), ExcludeInterfaces: []string{"["}}, discard); err == nil {
		t.Fatal("bad glob accepted")
	}
}
