package collectors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/prometheus/procfs"
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
// tcp6. It reads with prometheus/procfs.
type Netstat struct {
	fs       procfs.FS
	exclude  []string
	log      *slog.Logger
	pageSize float64

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
	pfs, err := procfs.NewFS(filepath.Join(cfg.Root, "proc"))
	if err != nil {
		return nil, fmt.Errorf("netstat: %w", err)
	}
	for _, g := range cfg.ExcludeInterfaces {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("netstat: bad interface pattern %q: %w", g, err)
		}
	}
	n := &Netstat{fs: pfs, exclude: cfg.ExcludeInterfaces, log: log, pageSize: float64(os.Getpagesize()), ifTags: map[string][]Tag{}}
	for i, s := range tcpStates {
		n.stateTags[i] = []Tag{{"state", s}}
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
	self, err := n.fs.Self()
	if err != nil {
		return fmt.Errorf("netstat: %w", err)
	}
	var errs []error
	if err := n.interfaces(self, emit); err != nil {
		errs = append(errs, err)
	}
	if err := n.snmp(self, emit); err != nil {
		errs = append(errs, err)
	}
	if err := n.sockstat(emit); err != nil {
		errs = append(errs, err)
	}
	if err := n.connections(emit); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (n *Netstat) interfaces(self procfs.Proc, emit func(Sample)) error {
	dev, err := self.NetDev()
	if err != nil {
		return fmt.Errorf("netstat: %w", err)
	}
	n.ifNames = n.ifNames[:0]
	for name := range dev {
		if !n.excluded(name) {
			n.ifNames = append(n.ifNames, name)
		}
	}
	slices.Sort(n.ifNames)
	for _, name := range n.ifNames {
		d := dev[name]
		tags, ok := n.ifTags[name]
		if !ok {
			tags = []Tag{{"interface", name}}
			n.ifTags[name] = tags
		}
		counter(emit, "net.interface.receive_bytes_total", float64(d.RxBytes), tags)
		counter(emit, "net.interface.receive_packets_total", float64(d.RxPackets), tags)
		counter(emit, "net.interface.receive_errors_total", float64(d.RxErrors), tags)
		counter(emit, "net.interface.receive_drops_total", float64(d.RxDropped), tags)
		counter(emit, "net.interface.transmit_bytes_total", float64(d.TxBytes), tags)
		counter(emit, "net.interface.transmit_packets_total", float64(d.TxPackets), tags)
		counter(emit, "net.interface.transmit_errors_total", float64(d.TxErrors), tags)
		counter(emit, "net.interface.transmit_drops_total", float64(d.TxDropped), tags)
	}
	return nil
}

// field emits v when the kernel has the field (procfs leaves it nil
// otherwise, so a field of a newer kernel is absent, not zero).
func field(emit func(Sample), name string, kind Kind, v *float64) {
	if v != nil {
		emit(Sample{Name: name, Value: *v, Kind: kind})
	}
}

func (n *Netstat) snmp(self procfs.Proc, emit func(Sample)) error {
	var errs []error
	s, err := self.Snmp()
	if err != nil {
		errs = append(errs, fmt.Errorf("netstat: %w", err))
	} else {
		t := s.Tcp
		field(emit, "net.tcp.active_opens_total", Counter, t.ActiveOpens)
		field(emit, "net.tcp.passive_opens_total", Counter, t.PassiveOpens)
		field(emit, "net.tcp.attempt_fails_total", Counter, t.AttemptFails)
		field(emit, "net.tcp.estab_resets_total", Counter, t.EstabResets)
		field(emit, "net.tcp.curr_estab", Gauge, t.CurrEstab)
		field(emit, "net.tcp.in_segs_total", Counter, t.InSegs)
		field(emit, "net.tcp.out_segs_total", Counter, t.OutSegs)
		field(emit, "net.tcp.retrans_segs_total", Counter, t.RetransSegs)
		field(emit, "net.tcp.in_errs_total", Counter, t.InErrs)
		field(emit, "net.tcp.out_rsts_total", Counter, t.OutRsts)
		u := s.Udp
		field(emit, "net.udp.in_errors_total", Counter, u.InErrors)
		field(emit, "net.udp.rcvbuf_errors_total", Counter, u.RcvbufErrors)
		field(emit, "net.udp.sndbuf_errors_total", Counter, u.SndbufErrors)
		field(emit, "net.udp.no_ports_total", Counter, u.NoPorts)
	}
	x, err := self.Netstat()
	if err != nil {
		errs = append(errs, fmt.Errorf("netstat: %w", err))
	} else {
		field(emit, "net.tcp.listen_overflows_total", Counter, x.ListenOverflows)
		field(emit, "net.tcp.listen_drops_total", Counter, x.ListenDrops)
		field(emit, "net.tcp.timeouts_total", Counter, x.TCPTimeouts)
		field(emit, "net.tcp.syn_retrans_total", Counter, x.TCPSynRetrans)
		field(emit, "net.tcp.syncookies_sent_total", Counter, x.SyncookiesSent)
		field(emit, "net.tcp.rcvq_drops_total", Counter, x.TCPRcvQDrop)
	}
	return errors.Join(errs...)
}

func (n *Netstat) sockstat(emit func(Sample)) error {
	st, err := n.fs.NetSockstat()
	if err != nil {
		return fmt.Errorf("netstat: %w", err)
	}
	if st.Used != nil {
		gauge(emit, "net.sockstat.sockets_used", float64(*st.Used), nil)
	}
	intField := func(name string, v *int, scale float64) {
		if v != nil {
			gauge(emit, name, float64(*v)*scale, nil)
		}
	}
	for _, p := range st.Protocols {
		switch p.Protocol {
		case "TCP":
			gauge(emit, "net.sockstat.tcp_inuse", float64(p.InUse), nil)
			intField("net.sockstat.tcp_orphan", p.Orphan, 1)
			intField("net.sockstat.tcp_tw", p.TW, 1)
			intField("net.sockstat.tcp_alloc", p.Alloc, 1)
			// mem is in pages.
			intField("net.sockstat.tcp_mem_bytes", p.Mem, n.pageSize)
		case "UDP":
			gauge(emit, "net.sockstat.udp_inuse", float64(p.InUse), nil)
			intField("net.sockstat.udp_mem_bytes", p.Mem, n.pageSize)
		}
	}
	return nil
}

func (n *Netstat) connections(emit func(Sample)) error {
	clear(n.counts[:])
	var errs []error
	for _, read := range [...]func() (procfs.NetTCP, error){n.fs.NetTCP, n.fs.NetTCP6} {
		lines, err := read()
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("netstat: %w", err))
			continue
		}
		for _, l := range lines {
			if l.St >= 1 && int(l.St) <= len(tcpStates) {
				n.counts[l.St-1]++
			}
		}
	}
	if len(errs) == 2 {
		return errors.Join(errs...)
	}
	for i, c := range n.counts {
		gauge(emit, "net.tcp.connections", float64(c), n.stateTags[i])
	}
	return errors.Join(errs...)
}
