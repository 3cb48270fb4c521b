package collectors

// The collectors parse kernel files by hand (parse.go says why). These
// tests read the same files with containerd/cgroups/v3's stats readers and
// prometheus/procfs — linked into the tests only — and require the same
// figures: on the fixture trees, and on a snapshot of this machine's own
// files taken for the test.

import (
	"bytes"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/prometheus/procfs"

	"github.com/stewardhq/steward/internal/proc"
)

// agree compares what a collector emitted with what the library says,
// series by series, and requires the same set of series.
func agree(t *testing.T, ours samples, lib map[string]float64) {
	t.Helper()
	for k, v := range lib {
		got, ok := ours[k]
		if !ok {
			t.Errorf("%s: library has %v, we have nothing", k, v)
		} else if math.Abs(got.Value-v) > 1e-9*math.Max(1, math.Abs(v)) {
			t.Errorf("%s: we have %v, the library %v", k, got.Value, v)
		}
	}
	for k := range ours {
		if _, ok := lib[k]; !ok {
			t.Errorf("%s: we emit it, the library has no such figure", k)
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// libV2 is what cgroup2's stats reader reports for dir, named as the
// collector names it and only where the collector's file exists.
func libV2(t *testing.T, mountpoint, group string) map[string]float64 {
	t.Helper()
	m, err := cgroup2.Load(group, cgroup2.WithMountpoint(mountpoint))
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mountpoint, group)
	has := func(f string) bool { return exists(filepath.Join(dir, f)) }
	out := map[string]float64{}
	cpu, mem := st.GetCPU(), st.GetMemory()
	if has("cpu.stat") {
		out["container.cpu.usage_seconds_total"] = usec(cpu.GetUsageUsec())
		out["container.cpu.user_seconds_total"] = usec(cpu.GetUserUsec())
		out["container.cpu.system_seconds_total"] = usec(cpu.GetSystemUsec())
		if has("cpu.max") {
			out["container.cpu.periods_total"] = float64(cpu.GetNrPeriods())
			out["container.cpu.throttled_periods_total"] = float64(cpu.GetNrThrottled())
			out["container.cpu.throttled_seconds_total"] = usec(cpu.GetThrottledUsec())
		}
	}
	if has("cpu.max") { // the library does not read limits: cpu.max by hand
		b, _ := os.ReadFile(filepath.Join(dir, "cpu.max"))
		if q, p, _ := strings.Cut(strings.TrimSpace(string(b)), " "); q != "max" {
			qf, _ := strconv.ParseFloat(q, 64)
			pf, _ := strconv.ParseFloat(p, 64)
			out["container.cpu.limit_cores"] = qf / pf
		}
	}
	if has("memory.current") {
		out["container.memory.usage_bytes"] = float64(mem.GetUsage())
		if has("memory.stat") {
			out["container.memory.working_set_bytes"] = float64(mem.GetUsage() - min(mem.GetUsage(), mem.GetInactiveFile()))
		}
	}
	if has("memory.max") && mem.GetUsageLimit() != math.MaxUint64 {
		out["container.memory.limit_bytes"] = float64(mem.GetUsageLimit())
	}
	if has("memory.stat") {
		out["container.memory.rss_bytes"] = float64(mem.GetAnon())
		out["container.memory.cache_bytes"] = float64(mem.GetFile())
	}
	if has("memory.peak") {
		out["container.memory.peak_bytes"] = float64(mem.GetMaxUsage())
	}
	if has("memory.swap.current") {
		out["container.memory.swap_bytes"] = float64(mem.GetSwapUsage())
	}
	if has("memory.swap.max") && mem.GetSwapLimit() != math.MaxUint64 {
		out["container.memory.swap_limit_bytes"] = float64(mem.GetSwapLimit())
	}
	if ev := st.GetMemoryEvents(); ev != nil {
		out["container.memory.failcnt_total"] = float64(ev.GetMax())
		out["container.memory.oom_events_total"] = float64(ev.GetOom())
		out["container.memory.oom_kills_total"] = float64(ev.GetOomKill())
	}
	if has("pids.current") {
		out["container.pids.current"] = float64(st.GetPids().GetCurrent())
	}
	if has("pids.max") && st.GetPids().GetLimit() != math.MaxUint64 {
		out["container.pids.limit"] = float64(st.GetPids().GetLimit())
	}
	if has("io.stat") {
		var rb, wb, ro, wo uint64
		for _, e := range st.GetIo().GetUsage() {
			rb, wb, ro, wo = rb+e.Rbytes, wb+e.Wbytes, ro+e.Rios, wo+e.Wios
		}
		out["container.io.read_bytes_total"], out["container.io.write_bytes_total"] = float64(rb), float64(wb)
		out["container.io.reads_total"], out["container.io.writes_total"] = float64(ro), float64(wo)
	}
	addPSI := func(res string, some, full *v2stats.PSIData) {
		if !has(res + ".pressure") {
			return
		}
		if some != nil {
			out["container.pressure."+res+".some_seconds_total"] = usec(some.GetTotal())
		}
		if full != nil {
			out["container.pressure."+res+".full_seconds_total"] = usec(full.GetTotal())
		}
	}
	addPSI("cpu", cpu.GetPSI().GetSome(), cpu.GetPSI().GetFull())
	addPSI("memory", mem.GetPSI().GetSome(), mem.GetPSI().GetFull())
	addPSI("io", st.GetIo().GetPSI().GetSome(), st.GetIo().GetPSI().GetFull())
	return out
}

func TestOracleCgroupV2(t *testing.T) {
	tr := v2Tree(t)
	ours, err := collect(t, newCgroupT(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	agree(t, ours, libV2(t, tr.path("sys/fs/cgroup"), v2Group))
}

// libV1 is what cgroup1's controllers report for group below root (a
// /sys/fs/cgroup with one directory per controller). IO is compared only
// where the recursive and the plain throttle files agree: the library
// reads the plain ones, the collector the recursive ones.
func libV1(t *testing.T, root string, groups map[string]string) map[string]float64 {
	t.Helper()
	m := &v1stats.Metrics{CPU: &v1stats.CPUStat{Throttling: &v1stats.Throttle{}, Usage: &v1stats.CPUUsage{}}}
	out := map[string]float64{}
	dir := func(ctrl string) string { return filepath.Join(root, ctrl, groups[ctrl]) }
	stat := func(ctrl string, c interface {
		Stat(string, *v1stats.Metrics) error
	}) bool {
		if _, ok := groups[ctrl]; !ok {
			return false
		}
		// The library fails where a file is missing (pids.current in a
		// root cgroup); the collector leaves those series out.
		marker := map[string]string{"cpuacct": "cpuacct.usage", "cpu": "cpu.stat", "memory": "memory.stat",
			"pids": "pids.current", "blkio": "blkio.throttle.io_service_bytes"}[ctrl]
		if !exists(filepath.Join(dir(ctrl), marker)) {
			return false
		}
		if err := c.Stat(groups[ctrl], m); err != nil {
			t.Fatalf("%s: %v", ctrl, err)
		}
		return true
	}
	if stat("cpuacct", cgroup1.NewCpuacct(root)) {
		out["container.cpu.usage_seconds_total"] = nsec(m.CPU.Usage.Total)
		out["container.cpu.user_seconds_total"] = nsec(m.CPU.Usage.User)
		out["container.cpu.system_seconds_total"] = nsec(m.CPU.Usage.Kernel)
	}
	if stat("cpu", cgroup1.NewCpu(root)) {
		out["container.cpu.periods_total"] = float64(m.CPU.Throttling.Periods)
		out["container.cpu.throttled_periods_total"] = float64(m.CPU.Throttling.ThrottledPeriods)
		out["container.cpu.throttled_seconds_total"] = nsec(m.CPU.Throttling.ThrottledTime)
		q, _ := os.ReadFile(filepath.Join(dir("cpu"), "cpu.cfs_quota_us"))
		p, _ := os.ReadFile(filepath.Join(dir("cpu"), "cpu.cfs_period_us"))
		qf, _ := strconv.ParseFloat(strings.TrimSpace(string(q)), 64)
		pf, _ := strconv.ParseFloat(strings.TrimSpace(string(p)), 64)
		if qf > 0 {
			out["container.cpu.limit_cores"] = qf / pf
		}
	}
	ignore := []string{"kmem", "kmem.tcp"}
	if !exists(filepath.Join(dir("memory"), "memory.memsw.usage_in_bytes")) {
		ignore = append(ignore, "memsw")
	}
	if stat("memory", cgroup1.NewMemory(root, cgroup1.IgnoreModules(ignore...))) {
		mem := m.Memory
		out["container.memory.usage_bytes"] = float64(mem.Usage.Usage)
		out["container.memory.working_set_bytes"] = float64(mem.Usage.Usage - min(mem.Usage.Usage, mem.TotalInactiveFile))
		if mem.Usage.Limit < 1<<62 {
			out["container.memory.limit_bytes"] = float64(mem.Usage.Limit)
		}
		out["container.memory.rss_bytes"] = float64(mem.TotalRSS)
		out["container.memory.cache_bytes"] = float64(mem.TotalCache)
		out["container.memory.peak_bytes"] = float64(mem.Usage.Max)
		out["container.memory.failcnt_total"] = float64(mem.Usage.Failcnt)
		out["container.memory.oom_kills_total"] = float64(m.MemoryOomControl.OomKill)
		// Files read one after the other are not one moment: memsw may
		// be read below usage.
		if exists(filepath.Join(dir("memory"), "memory.memsw.usage_in_bytes")) && mem.Swap.Usage >= mem.Usage.Usage {
			out["container.memory.swap_bytes"] = float64(mem.Swap.Usage - mem.Usage.Usage)
		}
	}
	if stat("pids", cgroup1.NewPids(root)) {
		out["container.pids.current"] = float64(m.Pids.Current)
		if m.Pids.Limit != 0 { // the library reads "max" as 0
			out["container.pids.limit"] = float64(m.Pids.Limit)
		}
	}
	plain, _ := os.ReadFile(filepath.Join(dir("blkio"), "blkio.throttle.io_service_bytes"))
	recursive, _ := os.ReadFile(filepath.Join(dir("blkio"), "blkio.throttle.io_service_bytes_recursive"))
	if string(plain) == string(recursive) && stat("blkio", cgroup1.NewBlkio(root, cgroup1.ProcRoot(filepath.Join(root, "../../../proc")))) {
		var rb, wb, ro, wo uint64
		for _, e := range m.Blkio.IoServiceBytesRecursive {
			switch e.Op {
			case "Read":
				rb += e.Value
			case "Write":
				wb += e.Value
			}
		}
		for _, e := range m.Blkio.IoServicedRecursive {
			switch e.Op {
			case "Read":
				ro += e.Value
			case "Write":
				wo += e.Value
			}
		}
		out["container.io.read_bytes_total"], out["container.io.write_bytes_total"] = float64(rb), float64(wb)
		out["container.io.reads_total"], out["container.io.writes_total"] = float64(ro), float64(wo)
	}
	return out
}

func TestOracleCgroupV1(t *testing.T) {
	tr := v1Tree(t)
	ours, err := collect(t, newCgroupT(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for _, c := range v1Controllers {
		groups[c] = v1Group
	}
	agree(t, ours, libV1(t, tr.path("sys/fs/cgroup"), groups))
}

// snapshot copies this process's own cgroup and /proc files into a tree,
// so that both readers see the same moment of a real kernel.
func snapshot(t *testing.T) (*tree, map[string]string, string) {
	t.Helper()
	tr := newTree(t)
	pid := strconv.Itoa(os.Getpid())
	for _, f := range []string{"cgroup", "mountinfo", "stat"} {
		tr.write("proc/"+pid+"/"+f, fixture(t, "/proc/self/"+f))
	}
	tr.link("proc/self", pid)
	tr.link("proc/net", "self/net")
	tr.write("proc/partitions", fixture(t, "/proc/partitions"))
	for _, f := range []string{"dev", "snmp", "netstat", "sockstat", "tcp", "tcp6"} {
		if b, err := os.ReadFile("/proc/self/net/" + f); err == nil {
			tr.write("proc/"+pid+"/net/"+f, string(b))
		}
	}
	place, err := findCgroup("/")
	if err != nil {
		t.Fatalf("no cgroup found for this process: %v", err)
	}
	groups := map[string]string{}
	copyCg := func(src, dst string) {
		entries, _ := os.ReadDir(src)
		for _, e := range entries {
			if e.Type().IsRegular() {
				if b, err := os.ReadFile(filepath.Join(src, e.Name())); err == nil {
					tr.write(filepath.Join(dst, e.Name()), string(b))
				}
			}
		}
	}
	if place.mode == CgroupV2 {
		rel := strings.TrimPrefix(place.unified, "/sys/fs/cgroup")
		copyCg(place.unified, "sys/fs/cgroup"+rel)
		return tr, map[string]string{"": rel}, place.mode
	}
	for ctrl, dir := range place.v1 {
		rel := strings.TrimPrefix(dir, "/sys/fs/cgroup/"+ctrl)
		groups[ctrl] = "/" + strings.TrimPrefix(rel, "/")
		copyCg(dir, "sys/fs/cgroup/"+ctrl+rel)
	}
	if place.unified != "" {
		copyCg(place.unified, "sys/fs/cgroup/unified"+strings.TrimPrefix(place.unified, "/sys/fs/cgroup/unified"))
	}
	return tr, groups, place.mode
}

// TestOracleThisMachine: this machine's own cgroup and network files,
// snapshotted, read by both.
func TestOracleThisMachine(t *testing.T) {
	tr, groups, mode := snapshot(t)
	c, err := NewCgroup(tr.root, discard)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	// Pressure comes from the unified hierarchy, which the v1 library
	// does not read: compare it by hand below.
	pressure := samples{}
	for k, v := range ours {
		if strings.HasPrefix(k, "container.pressure.") && mode != CgroupV2 {
			pressure[k] = v
			delete(ours, k)
		}
	}
	if mode == CgroupV2 {
		agree(t, ours, libV2(t, tr.path("sys/fs/cgroup"), groups[""]))
	} else {
		agree(t, ours, libV1(t, tr.path("sys/fs/cgroup"), groups))
	}
	t.Logf("%s: %d cgroup series agree", mode, len(ours))
	for k, v := range pressure {
		if v.Value < 0 {
			t.Errorf("%s = %v", k, v.Value)
		}
	}

	n, err := NewNetstat(NetstatConfig{Root: tr.root, ExcludeInterfaces: []string{"lo"}}, discard)
	if err != nil {
		t.Fatal(err)
	}
	net, err := collect(t, n)
	if err != nil {
		t.Fatal(err)
	}
	agree(t, net, libNet(t, tr.root, []string{"lo"}))
}

func TestOracleNetstatFixtures(t *testing.T) {
	for _, fx := range []string{v2Fixture, v1Fixture} {
		tr := netTree(t, fx)
		n, _ := NewNetstat(NetstatConfig{Root: tr.root}, discard)
		ours, err := collect(t, n)
		if err != nil {
			t.Fatal(err)
		}
		agree(t, ours, libNet(t, tr.root, nil))
	}
}

// libNet is what prometheus/procfs reports for root's /proc/self/net.
func libNet(t *testing.T, root string, exclude []string) map[string]float64 {
	t.Helper()
	fs, err := procfs.NewFS(filepath.Join(root, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := fs.Self()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	dev, err := self.NetDev()
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range dev {
		skip := false
		for _, e := range exclude {
			skip = skip || e == name
		}
		if skip {
			continue
		}
		tag := ";interface=" + name
		out["net.interface.receive_bytes_total"+tag] = float64(d.RxBytes)
		out["net.interface.receive_packets_total"+tag] = float64(d.RxPackets)
		out["net.interface.receive_errors_total"+tag] = float64(d.RxErrors)
		out["net.interface.receive_drops_total"+tag] = float64(d.RxDropped)
		out["net.interface.transmit_bytes_total"+tag] = float64(d.TxBytes)
		out["net.interface.transmit_packets_total"+tag] = float64(d.TxPackets)
		out["net.interface.transmit_errors_total"+tag] = float64(d.TxErrors)
		out["net.interface.transmit_drops_total"+tag] = float64(d.TxDropped)
	}
	set := func(name string, v *float64) {
		if v != nil {
			out[name] = *v
		}
	}
	snmp, err := self.Snmp()
	if err != nil {
		t.Fatal(err)
	}
	set("net.tcp.active_opens_total", snmp.Tcp.ActiveOpens)
	set("net.tcp.passive_opens_total", snmp.Tcp.PassiveOpens)
	set("net.tcp.attempt_fails_total", snmp.Tcp.AttemptFails)
	set("net.tcp.estab_resets_total", snmp.Tcp.EstabResets)
	set("net.tcp.curr_estab", snmp.Tcp.CurrEstab)
	set("net.tcp.in_segs_total", snmp.Tcp.InSegs)
	set("net.tcp.out_segs_total", snmp.Tcp.OutSegs)
	set("net.tcp.retrans_segs_total", snmp.Tcp.RetransSegs)
	set("net.tcp.in_errs_total", snmp.Tcp.InErrs)
	set("net.tcp.out_rsts_total", snmp.Tcp.OutRsts)
	set("net.udp.in_errors_total", snmp.Udp.InErrors)
	set("net.udp.rcvbuf_errors_total", snmp.Udp.RcvbufErrors)
	set("net.udp.sndbuf_errors_total", snmp.Udp.SndbufErrors)
	set("net.udp.no_ports_total", snmp.Udp.NoPorts)
	ns, err := self.Netstat()
	if err != nil {
		t.Fatal(err)
	}
	set("net.tcp.listen_overflows_total", ns.ListenOverflows)
	set("net.tcp.listen_drops_total", ns.ListenDrops)
	set("net.tcp.timeouts_total", ns.TCPTimeouts)
	set("net.tcp.syn_retrans_total", ns.TCPSynRetrans)
	set("net.tcp.syncookies_sent_total", ns.SyncookiesSent)
	set("net.tcp.rcvq_drops_total", ns.TCPRcvQDrop)
	ss, err := fs.NetSockstat()
	if err != nil {
		t.Fatal(err)
	}
	page := float64(os.Getpagesize())
	iset := func(name string, v *int, scale float64) {
		if v != nil {
			out[name] = float64(*v) * scale
		}
	}
	iset("net.sockstat.sockets_used", ss.Used, 1)
	for _, p := range ss.Protocols {
		switch p.Protocol {
		case "TCP":
			out["net.sockstat.tcp_inuse"] = float64(p.InUse)
			iset("net.sockstat.tcp_orphan", p.Orphan, 1)
			iset("net.sockstat.tcp_tw", p.TW, 1)
			iset("net.sockstat.tcp_alloc", p.Alloc, 1)
			iset("net.sockstat.tcp_mem_bytes", p.Mem, page)
		case "UDP":
			out["net.sockstat.udp_inuse"] = float64(p.InUse)
			iset("net.sockstat.udp_mem_bytes", p.Mem, page)
		}
	}
	for _, s := range tcpStates {
		out["net.tcp.connections;state="+s] = 0
	}
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		lines, err := read()
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, l := range lines {
			if l.St >= 1 && int(l.St) <= len(tcpStates) {
				out["net.tcp.connections;state="+tcpStates[l.St-1]]++
			}
		}
	}
	return out
}

// TestOracleProcFiles: /proc/PID/stat, /proc/self/cgroup and mountinfo
// as procfs parses them, for every process of this machine (snapshotted).
func TestOracleProcFiles(t *testing.T) {
	tr := newTree(t)
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		tr.write("proc/"+e.Name()+"/stat", string(b))
		pids = append(pids, pid)
	}
	fs, _ := procfs.NewFS(tr.path("proc"))
	for _, pid := range pids {
		p, _ := fs.Proc(pid)
		want, err := p.Stat()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(tr.path("proc/" + strconv.Itoa(pid) + "/stat"))
		got, err := proc.ParseStat(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got.PID != want.PID || got.PPID != want.PPID || got.State != want.State[0] || got.Pgrp != want.PGRP ||
			got.Utime != uint64(want.UTime) || got.Stime != uint64(want.STime) || got.Cutime != uint64(want.CUTime) ||
			got.Cstime != uint64(want.CSTime) || got.Threads != want.NumThreads || got.RSSPages != int64(want.RSS) {
			t.Errorf("pid %d: ours %+v, procfs %+v", pid, got, want)
		}
	}
	t.Logf("%d processes agree", len(pids))

	self, _ := procfs.NewFS("/proc")
	me, _ := self.Self()
	wantGroups, err := me.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open("/proc/self/cgroup")
	gotGroups, err := parseCgroupFile(f)
	f.Close()
	if err != nil || len(gotGroups) != len(wantGroups) {
		t.Fatalf("cgroup: %v, %d lines, procfs %d", err, len(gotGroups), len(wantGroups))
	}
	for i, w := range wantGroups {
		g := gotGroups[i]
		if g.id != w.HierarchyID || g.path != w.Path || strings.Join(g.controllers, ",") != strings.Join(w.Controllers, ",") {
			t.Errorf("cgroup line %d: ours %+v, procfs %+v", i, g, w)
		}
	}
	wantMounts, err := me.MountInfo()
	if err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open("/proc/self/mountinfo")
	gotMounts, err := parseMountInfo(f)
	f.Close()
	if err != nil || len(gotMounts) != len(wantMounts) {
		t.Fatalf("mountinfo: %v, %d lines, procfs %d", err, len(gotMounts), len(wantMounts))
	}
	for i, w := range wantMounts {
		g := gotMounts[i]
		if g.root != w.Root || g.point != w.MountPoint || g.fstype != w.FSType || len(g.options) != len(w.SuperOptions) {
			t.Errorf("mount %d: ours %+v, procfs %+v", i, g, w)
		}
	}
}

// TestTCPDiagAgreesWithProc: the sock_diag count of this machine's TCP
// sockets equals the count from /proc/net/tcp and tcp6, taken before and
// after (retried while sockets come and go).
func TestTCPDiagAgreesWithProc(t *testing.T) {
	// A listener and an established pair of our own, so that there is
	// something to count in two states at least.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fromProc := func() [len(tcpStates)]int {
		var counts [len(tcpStates)]int
		for _, f := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if err := countTCPStates(bytes.NewBuffer(b), &counts); err != nil {
				t.Fatal(err)
			}
		}
		return counts
	}
	var d tcpDiag
	for try := 0; ; try++ {
		before := fromProc()
		var got [len(tcpStates)]int
		if err := d.count(&got); err != nil {
			t.Fatal(err)
		}
		after := fromProc()
		if before != after && try < 50 {
			continue // sockets changed meanwhile
		}
		if got != before {
			t.Fatalf("sock_diag %v, /proc %v", got, before)
		}
		if got[0] < 2 || got[9] < 1 {
			t.Fatalf("sock_diag %v: our own established pair and listener missing", got)
		}
		t.Logf("by state %v", got)
		return
	}
}
