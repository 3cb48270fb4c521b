package collectors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
)

// NetstatConfig says what the network collector reads.
type NetstatConfig struct {
	// Root is the filesystem root /proc is read under.
	Root string
	// ExcludeInterfaces are shell globs of interface names left out
	// (default: "lo").
	ExcludeInterfaces []string
}

// Netstat reports the network namespace steward runs in — the
// container's: per-interface traffic from /proc/net/dev, TCP and UDP
// counters from /proc/net/snmp and netstat, socket counts from
// /proc/net/sockstat, and TCP connections by state from /proc/net/tcp and
// tcp6. (The same files prometheus/procfs reads; see parse.go for why not
// with it.)
type Netstat struct {
	dir      string // root/proc/self/net
	exclude  []string
	log      *slog.Logger
	pageSize float64
	r        reader

	diag      *tcpDiag // nil: count from /proc/net/tcp and tcp6
	ifTags    map[string][]Tag
	ifNames   []string
	stateTags [len(tcpStates)][]Tag
	counts    [len(tcpStates)]int
}

// tcpStates names the kernel's TCP states (include/net/tcp_states.h), 1-based.
var tcpStates = [...]string{"established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2",
	"time_wait", "close", "close_wait", "last_ack", "listen", "closing"}

// NewNetstat returns a network collector.
func NewNetstat(cfg NetstatConfig, log *slog.Logger) (*Netstat, error) {
	for _, g := range cfg.ExcludeInterfaces {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("netstat: bad interface pattern %q: %w", g, err)
		}
	}
	dir := filepath.Join(cfg.Root, "proc/self/net")
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("netstat: %w", err)
	}
	n := &Netstat{dir: dir, exclude: cfg.ExcludeInterfaces, log: log, pageSize: float64(os.Getpagesize()), ifTags: map[string][]Tag{}}
	for i, s := range tcpStates {
		n.stateTags[i] = []Tag{{"state", s}}
	}
	if filepath.Clean(cfg.Root) == "/" {
		n.diag = &tcpDiag{}
	}
	return n, nil
}

// Name implements Collector.
func (n *Netstat) Name() string { return "netstat" }

func (n *Netstat) excluded(iface string) bool {
	for _, g := range n.exclude {
		if ok, _ := path.Match(g, iface); ok {
			return true
		}
	}
	return false
}

// Collect implements Collector.
func (n *Netstat) Collect(_ context.Context, emit func(Sample)) error {
	var errs []error
	for _, f := range [...]func(func(Sample)) error{n.interfaces, n.snmp, n.sockstat, n.connections} {
		if err := f(emit); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Netstat) parse(file string, parse func(b *bytes.Buffer) error) error {
	b, err := n.r.read(filepath.Join(n.dir, file))
	if err != nil {
		return fmt.Errorf("netstat: %w", err)
	}
	if err := parse(b); err != nil {
		return fmt.Errorf("netstat: %s: %w", filepath.Join(n.dir, file), err)
	}
	return nil
}

func (n *Netstat) interfaces(emit func(Sample)) error {
	// Lines refer to the read buffer: emit after parsing, in name order.
	type iface struct {
		tags []Tag
		d    netDev
	}
	var found [16]iface
	list := found[:0]
	err := n.parse("dev", func(b *bytes.Buffer) error {
		return parseNetDev(b, func(name []byte, d netDev) {
			tags, ok := n.ifTags[string(name)]
			if !ok {
				if n.excluded(string(name)) {
					tags = nil
				} else {
					tags = []Tag{{"interface", string(name)}}
				}
				if len(n.ifTags) < 1024 { // interfaces come and go; keep the map bounded
					n.ifTags[string(name)] = tags
				}
			}
			if tags != nil {
				list = append(list, iface{tags, d})
			}
		})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(list, func(a, b iface) int {
		if a.tags[0].Value < b.tags[0].Value {
			return -1
		}
		if a.tags[0].Value > b.tags[0].Value {
			return 1
		}
		return 0
	})
	for _, it := range list {
		d, tags := it.d, it.tags
		counter(emit, "net.interface.receive_bytes_total", float64(d.rxBytes), tags)
		counter(emit, "net.interface.receive_packets_total", float64(d.rxPackets), tags)
		counter(emit, "net.interface.receive_errors_total", float64(d.rxErrors), tags)
		counter(emit, "net.interface.receive_drops_total", float64(d.rxDrops), tags)
		counter(emit, "net.interface.transmit_bytes_total", float64(d.txBytes), tags)
		counter(emit, "net.interface.transmit_packets_total", float64(d.txPackets), tags)
		counter(emit, "net.interface.transmit_errors_total", float64(d.txErrors), tags)
		counter(emit, "net.interface.transmit_drops_total", float64(d.txDrops), tags)
	}
	return nil
}

// snmpNames maps the counters reported from /proc/net/snmp and
// /proc/net/netstat ("Proto Field") to their series. A field a kernel does
// not have is absent, not zero.
var snmpNames = map[string]struct {
	name string
	kind Kind
}{
	"Tcp ActiveOpens":        {"net.tcp.active_opens_total", Counter},
	"Tcp PassiveOpens":       {"net.tcp.passive_opens_total", Counter},
	"Tcp AttemptFails":       {"net.tcp.attempt_fails_total", Counter},
	"Tcp EstabResets":        {"net.tcp.estab_resets_total", Counter},
	"Tcp CurrEstab":          {"net.tcp.curr_estab", Gauge},
	"Tcp InSegs":             {"net.tcp.in_segs_total", Counter},
	"Tcp OutSegs":            {"net.tcp.out_segs_total", Counter},
	"Tcp RetransSegs":        {"net.tcp.retrans_segs_total", Counter},
	"Tcp InErrs":             {"net.tcp.in_errs_total", Counter},
	"Tcp OutRsts":            {"net.tcp.out_rsts_total", Counter},
	"TcpExt ListenOverflows": {"net.tcp.listen_overflows_total", Counter},
	"TcpExt ListenDrops":     {"net.tcp.listen_drops_total", Counter},
	"TcpExt TCPTimeouts":     {"net.tcp.timeouts_total", Counter},
	"TcpExt TCPSynRetrans":   {"net.tcp.syn_retrans_total", Counter},
	"TcpExt SyncookiesSent":  {"net.tcp.syncookies_sent_total", Counter},
	"TcpExt TCPRcvQDrop":     {"net.tcp.rcvq_drops_total", Counter},
	"Udp InErrors":           {"net.udp.in_errors_total", Counter},
	"Udp RcvbufErrors":       {"net.udp.rcvbuf_errors_total", Counter},
	"Udp SndbufErrors":       {"net.udp.sndbuf_errors_total", Counter},
	"Udp NoPorts":            {"net.udp.no_ports_total", Counter},
}

func (n *Netstat) snmp(emit func(Sample)) error {
	var key [64]byte
	found := func(proto, name []byte, v float64) {
		k := append(append(append(key[:0], proto...), ' '), name...)
		if s, ok := snmpNames[string(k)]; ok {
			emit(Sample{Name: s.name, Value: v, Kind: s.kind})
		}
	}
	var errs []error
	for _, file := range [...]string{"snmp", "netstat"} {
		if err := n.parse(file, func(b *bytes.Buffer) error { return parseSNMP(b, found) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sockstatNames maps "Proto key" of /proc/net/sockstat to series; mem is
// in pages.
var sockstatNames = map[string]struct {
	name  string
	pages bool
}{
	"sockets used": {"net.sockstat.sockets_used", false},
	"TCP inuse":    {"net.sockstat.tcp_inuse", false},
	"TCP orphan":   {"net.sockstat.tcp_orphan", false},
	"TCP tw":       {"net.sockstat.tcp_tw", false},
	"TCP alloc":    {"net.sockstat.tcp_alloc", false},
	"TCP mem":      {"net.sockstat.tcp_mem_bytes", true},
	"UDP inuse":    {"net.sockstat.udp_inuse", false},
	"UDP mem":      {"net.sockstat.udp_mem_bytes", true},
}

func (n *Netstat) sockstat(emit func(Sample)) error {
	var key [64]byte
	return n.parse("sockstat", func(b *bytes.Buffer) error {
		return parseSockstat(b, func(proto, k []byte, v uint64) {
			s, ok := sockstatNames[string(append(append(append(key[:0], proto...), ' '), k...))]
			if !ok {
				return
			}
			value := float64(v)
			if s.pages {
				value *= n.pageSize
			}
			gauge(emit, s.name, value, nil)
		})
	})
}

// connections counts TCP sockets by state, through sock_diag on the live
// system (see tcpdiag.go), else from /proc/net/tcp and tcp6.
func (n *Netstat) connections(emit func(Sample)) error {
	clear(n.counts[:])
	if n.diag != nil {
		err := n.diag.count(&n.counts)
		if err == nil {
			for i, c := range n.counts {
				gauge(emit, "net.tcp.connections", float64(c), n.stateTags[i])
			}
			return nil
		}
		n.log.Info("metrics: counting TCP connections from /proc/net/tcp instead", "err", err)
		n.diag = nil
		clear(n.counts[:])
	}
	var errs []error
	read := 0
	for _, file := range [...]string{"tcp", "tcp6"} {
		err := n.parse(file, func(b *bytes.Buffer) error { return countTCPStates(b, &n.counts) })
		if errors.Is(err, fs.ErrNotExist) && file == "tcp6" {
			continue // a kernel without IPv6
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		read++
	}
	if read == 0 {
		return errors.Join(errs...)
	}
	for i, c := range n.counts {
		gauge(emit, "net.tcp.connections", float64(c), n.stateTags[i])
	}
	return errors.Join(errs...)
}
