package collectors

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/prometheus/procfs"
)

// Cgroup modes.
const (
	CgroupV1     = "v1"     // controllers on cgroup v1 hierarchies only
	CgroupHybrid = "hybrid" // v1 controllers plus an (empty) v2 hierarchy, which has PSI
	CgroupV2     = "v2"     // unified hierarchy only
)

// v1Controllers are the v1 controllers the collector reads.
var v1Controllers = [...]string{"cpu", "cpuacct", "memory", "pids", "blkio"}

// Cgroup reports the container's own cgroup: CPU, memory, pids, IO and
// pressure. It finds the cgroup from /proc/self/cgroup and mountinfo, so it
// works with a private cgroup namespace (the container's cgroup is the
// mount's root) and with the host's (the path is looked up below the
// mount). Values come from containerd/cgroups' stats readers; what they do
// not read (CPU limits, v1 "max", PSI beside an empty v2 hierarchy) is read
// here.
//
// Absent, zero and unlimited stay apart: a series whose file the kernel
// does not have is not emitted (the library would report 0), and a limit is
// emitted only when one is set (the library reports "max" as MaxUint64 on
// v2 and as 0 for v1 pids).
type Cgroup struct {
	log   *slog.Logger
	place cgroupPlace

	v2 *cgroup2.Manager
	v1 []v1Controller

	present map[string]bool // files that exist: "memory.max" (v2), "memory/memory.stat" (v1), "unified/cpu.pressure"
	rounds  int
}

type v1Controller struct {
	name string
	// The controllers of containerd/cgroups/v3/cgroup1 all have this
	// method; Load would add a Lstat per controller and a goroutine each
	// per read, which a 10 s loop does not need.
	stat interface {
		Stat(path string, m *v1stats.Metrics) error
	}
	path string // relative to the controller's library root, see newCgroupV1
}

// cgroupPlace is where the process's cgroup is on disk.
type cgroupPlace struct {
	mode    string
	unified string            // the cgroup's directory in the v2 hierarchy, if mounted
	v1      map[string]string // controller -> the cgroup's directory
	v1mount map[string]string // controller -> its hierarchy's mount point
	v1rel   map[string]string // controller -> the cgroup's path below that mount
	// For v2: the mount point and the path below it.
	v2mount, v2rel string
}

// NewCgroup finds the cgroup of the process reading root/proc/self.
func NewCgroup(root string, log *slog.Logger) (*Cgroup, error) {
	place, err := findCgroup(root)
	if err != nil {
		return nil, err
	}
	c := &Cgroup{log: log, place: place}
	if place.mode == CgroupV2 {
		c.v2, err = cgroup2.Load(place.v2rel, cgroup2.WithMountpoint(place.v2mount))
		if err != nil {
			return nil, fmt.Errorf("cgroup: load %s: %w", place.unified, err)
		}
	}
	c.scan()
	if place.mode != CgroupV2 {
		c.v1 = newCgroupV1(root, place, c.present)
	}
	log.Debug("metrics: cgroup found", "mode", place.mode, "unified", place.unified, "v1", place.v1)
	return c, nil
}

// Mode is v1, hybrid or v2.
func (c *Cgroup) Mode() string { return c.place.mode }

// Name implements Collector.
func (c *Cgroup) Name() string { return "cgroup" }

// scan records which files exist. The set changes only when a parent
// enables or disables a controller, so it is refreshed now and then rather
// than tested file by file every round.
func (c *Cgroup) scan() {
	present := map[string]bool{}
	add := func(prefix, dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			present[prefix+e.Name()] = true
		}
	}
	if c.place.mode == CgroupV2 {
		add("", c.place.unified)
	} else {
		if c.place.unified != "" {
			add("unified/", c.place.unified)
		}
		for ctrl, dir := range c.place.v1 {
			add(ctrl+"/", dir)
		}
	}
	c.present = present
}

// Collect implements Collector.
func (c *Cgroup) Collect(_ context.Context, emit func(Sample)) error {
	if c.rounds++; c.rounds%30 == 0 {
		c.scan()
	}
	if c.place.mode == CgroupV2 {
		return c.collectV2(emit)
	}
	return c.collectV1(emit)
}

func (c *Cgroup) collectV2(emit func(Sample)) error {
	st, err := c.v2.StatFiltered(cgroup2.StatPids | cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatMemoryEvents | cgroup2.StatIO)
	if err != nil {
		return fmt.Errorf("cgroup: %s: %w", c.place.unified, err)
	}
	has := c.present
	var errs []error
	if cpu := st.CPU; cpu != nil && has["cpu.stat"] {
		counter(emit, "container.cpu.usage_seconds_total", usec(cpu.UsageUsec), nil)
		counter(emit, "container.cpu.user_seconds_total", usec(cpu.UserUsec), nil)
		counter(emit, "container.cpu.system_seconds_total", usec(cpu.SystemUsec), nil)
		// cpu.stat has the throttling lines only where the cpu controller
		// is enabled, which is when cpu.max exists.
		if has["cpu.max"] {
			counter(emit, "container.cpu.periods_total", float64(cpu.NrPeriods), nil)
			counter(emit, "container.cpu.throttled_periods_total", float64(cpu.NrThrottled), nil)
			counter(emit, "container.cpu.throttled_seconds_total", usec(cpu.ThrottledUsec), nil)
		}
	}
	if has["cpu.max"] {
		if cores, limited, err := readCPUMax(filepath.Join(c.place.unified, "cpu.max")); err != nil {
			errs = append(errs, err)
		} else if limited {
			gauge(emit, "container.cpu.limit_cores", cores, nil)
		}
	}
	if mem := st.Memory; mem != nil {
		if has["memory.current"] {
			gauge(emit, "container.memory.usage_bytes", float64(mem.Usage), nil)
			if has["memory.stat"] {
				gauge(emit, "container.memory.working_set_bytes", workingSet(mem.Usage, mem.InactiveFile), nil)
			}
		}
		if has["memory.max"] && mem.UsageLimit != math.MaxUint64 {
			gauge(emit, "container.memory.limit_bytes", float64(mem.UsageLimit), nil)
		}
		if has["memory.stat"] {
			gauge(emit, "container.memory.rss_bytes", float64(mem.Anon), nil)
			gauge(emit, "container.memory.cache_bytes", float64(mem.File), nil)
		}
		if has["memory.peak"] {
			gauge(emit, "container.memory.peak_bytes", float64(mem.MaxUsage), nil)
		}
		if has["memory.swap.current"] {
			gauge(emit, "container.memory.swap_bytes", float64(mem.SwapUsage), nil)
		}
		if has["memory.swap.max"] && mem.SwapLimit != math.MaxUint64 {
			gauge(emit, "container.memory.swap_limit_bytes", float64(mem.SwapLimit), nil)
		}
	}
	if ev := st.MemoryEvents; ev != nil && has["memory.events"] {
		// "max" counts the times usage hit the limit: v1's failcnt.
		counter(emit, "container.memory.failcnt_total", float64(ev.Max), nil)
		counter(emit, "container.memory.oom_events_total", float64(ev.Oom), nil)
		counter(emit, "container.memory.oom_kills_total", float64(ev.OomKill), nil)
	}
	if p := st.Pids; p != nil {
		if has["pids.current"] {
			gauge(emit, "container.pids.current", float64(p.Current), nil)
		}
		if has["pids.max"] && p.Limit != math.MaxUint64 {
			gauge(emit, "container.pids.limit", float64(p.Limit), nil)
		}
	}
	if io := st.Io; io != nil && has["io.stat"] {
		var rb, wb, ro, wo uint64
		for _, e := range io.Usage {
			rb, wb, ro, wo = rb+e.Rbytes, wb+e.Wbytes, ro+e.Rios, wo+e.Wios
		}
		emitIO(emit, rb, wb, ro, wo)
	}
	if has["cpu.pressure"] && st.CPU != nil {
		emitPSI(emit, "cpu", psiFromStats(st.CPU.PSI))
	}
	if has["memory.pressure"] && st.Memory != nil {
		emitPSI(emit, "memory", psiFromStats(st.Memory.PSI))
	}
	if has["io.pressure"] && st.Io != nil {
		emitPSI(emit, "io", psiFromStats(st.Io.PSI))
	}
	return errors.Join(errs...)
}

// newCgroupV1 builds the library's v1 controllers. Each library controller
// reads below <its root>/<controller name>, which is the mount point only
// when the hierarchy is mounted under the controller's own name; co-mounted
// hierarchies (cpu,cpuacct) are not. So every controller is rooted at its
// mount point and given "../<path below the mount>", which filepath.Join
// resolves to <mount point>/<path>.
func newCgroupV1(root string, place cgroupPlace, present map[string]bool) []v1Controller {
	var out []v1Controller
	for _, name := range v1Controllers {
		mount, ok := place.v1mount[name]
		if !ok {
			continue
		}
		rel := "../" + strings.TrimPrefix(place.v1rel[name], "/")
		var stat interface {
			Stat(string, *v1stats.Metrics) error
		}
		switch name {
		case "cpu":
			stat = cgroup1.NewCpu(mount)
		case "cpuacct":
			stat = cgroup1.NewCpuacct(mount)
		case "memory":
			// kmem is not reported, and newer kernels dropped its files;
			// memsw exists only with swap accounting.
			ignore := []string{"kmem", "kmem.tcp"}
			if !present["memory/memory.memsw.usage_in_bytes"] {
				ignore = append(ignore, "memsw")
			}
			stat = cgroup1.NewMemory(mount, cgroup1.IgnoreModules(ignore...))
		case "pids":
			stat = cgroup1.NewPids(mount)
		case "blkio":
			stat = cgroup1.NewBlkio(mount, cgroup1.ProcRoot(filepath.Join(root, "proc")))
		}
		out = append(out, v1Controller{name: name, stat: stat, path: rel})
	}
	return out
}

func (c *Cgroup) collectV1(emit func(Sample)) error {
	m := &v1stats.Metrics{CPU: &v1stats.CPUStat{Throttling: &v1stats.Throttle{}, Usage: &v1stats.CPUUsage{}}}
	var errs []error
	ok := map[string]bool{}
	for _, ctl := range c.v1 {
		if err := ctl.stat.Stat(ctl.path, m); err != nil {
			errs = append(errs, fmt.Errorf("cgroup: %s: %w", ctl.name, err))
			continue
		}
		ok[ctl.name] = true
	}
	has := c.present
	if ok["cpuacct"] {
		counter(emit, "container.cpu.usage_seconds_total", nsec(m.CPU.Usage.Total), nil)
		counter(emit, "container.cpu.user_seconds_total", nsec(m.CPU.Usage.User), nil)
		counter(emit, "container.cpu.system_seconds_total", nsec(m.CPU.Usage.Kernel), nil)
	}
	if ok["cpu"] {
		t := m.CPU.Throttling
		counter(emit, "container.cpu.periods_total", float64(t.Periods), nil)
		counter(emit, "container.cpu.throttled_periods_total", float64(t.ThrottledPeriods), nil)
		counter(emit, "container.cpu.throttled_seconds_total", nsec(t.ThrottledTime), nil)
		if has["cpu/cpu.cfs_quota_us"] && has["cpu/cpu.cfs_period_us"] {
			dir := c.place.v1["cpu"]
			if cores, limited, err := readCFSQuota(filepath.Join(dir, "cpu.cfs_quota_us"), filepath.Join(dir, "cpu.cfs_period_us")); err != nil {
				errs = append(errs, err)
			} else if limited {
				gauge(emit, "container.cpu.limit_cores", cores, nil)
			}
		}
	}
	if mem := m.Memory; ok["memory"] && mem != nil {
		u := mem.Usage
		gauge(emit, "container.memory.usage_bytes", float64(u.Usage), nil)
		gauge(emit, "container.memory.working_set_bytes", workingSet(u.Usage, mem.TotalInactiveFile), nil)
		if !v1Unlimited(u.Limit) {
			gauge(emit, "container.memory.limit_bytes", float64(u.Limit), nil)
		}
		// total_* include child cgroups, as v2's memory.stat does.
		gauge(emit, "container.memory.rss_bytes", float64(mem.TotalRSS), nil)
		gauge(emit, "container.memory.cache_bytes", float64(mem.TotalCache), nil)
		gauge(emit, "container.memory.peak_bytes", float64(u.Max), nil)
		counter(emit, "container.memory.failcnt_total", float64(u.Failcnt), nil)
		if has["memory/memory.memsw.usage_in_bytes"] && mem.Swap != nil && mem.Swap.Usage >= u.Usage {
			gauge(emit, "container.memory.swap_bytes", float64(mem.Swap.Usage-u.Usage), nil)
		}
		if oc := m.MemoryOomControl; oc != nil {
			counter(emit, "container.memory.oom_kills_total", float64(oc.OomKill), nil)
		}
	}
	if p := m.Pids; ok["pids"] && p != nil {
		gauge(emit, "container.pids.current", float64(p.Current), nil)
		// The library reads "max" as 0, which is also a real limit.
		if limit, limited, err := readLimit(filepath.Join(c.place.v1["pids"], "pids.max")); err != nil {
			errs = append(errs, err)
		} else if limited {
			gauge(emit, "container.pids.limit", float64(limit), nil)
		}
	}
	if b := m.Blkio; ok["blkio"] && b != nil {
		var rb, wb, ro, wo uint64
		for _, e := range b.IoServiceBytesRecursive {
			switch e.Op {
			case "Read":
				rb += e.Value
			case "Write":
				wb += e.Value
			}
		}
		for _, e := range b.IoServicedRecursive {
			switch e.Op {
			case "Read":
				ro += e.Value
			case "Write":
				wo += e.Value
			}
		}
		emitIO(emit, rb, wb, ro, wo)
	}
	// A hybrid host's v2 hierarchy has no controllers but still accounts
	// pressure per cgroup; the library reads PSI only next to a v2
	// controller's stat file, so it is read here.
	if c.place.mode == CgroupHybrid {
		for _, res := range [...]string{"cpu", "memory", "io"} {
			if !has["unified/"+res+".pressure"] {
				continue
			}
			p, err := readPSI(filepath.Join(c.place.unified, res+".pressure"))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			emitPSI(emit, res, p)
		}
	}
	return errors.Join(errs...)
}

func emitIO(emit func(Sample), rb, wb, ro, wo uint64) {
	counter(emit, "container.io.read_bytes_total", float64(rb), nil)
	counter(emit, "container.io.write_bytes_total", float64(wb), nil)
	counter(emit, "container.io.reads_total", float64(ro), nil)
	counter(emit, "container.io.writes_total", float64(wo), nil)
}

// psi holds the stall totals of one pressure file, in microseconds.
type psi struct {
	some, full       uint64
	hasSome, hasFull bool
}

func psiFromStats(p *v2stats.PSIStats) psi {
	var out psi
	if p == nil {
		return out
	}
	if p.Some != nil {
		out.some, out.hasSome = p.Some.Total, true
	}
	if p.Full != nil {
		out.full, out.hasFull = p.Full.Total, true
	}
	return out
}

var psiNames = map[string][2]string{
	"cpu":    {"container.pressure.cpu.some_seconds_total", "container.pressure.cpu.full_seconds_total"},
	"memory": {"container.pressure.memory.some_seconds_total", "container.pressure.memory.full_seconds_total"},
	"io":     {"container.pressure.io.some_seconds_total", "container.pressure.io.full_seconds_total"},
}

func emitPSI(emit func(Sample), res string, p psi) {
	names := psiNames[res]
	if p.hasSome {
		counter(emit, names[0], usec(p.some), nil)
	}
	if p.hasFull {
		counter(emit, names[1], usec(p.full), nil)
	}
}

func readPSI(path string) (psi, error) {
	f, err := os.Open(path)
	if err != nil {
		return psi{}, fmt.Errorf("cgroup: %w", err)
	}
	defer f.Close()
	p, err := parsePSI(f)
	if err != nil {
		return p, fmt.Errorf("cgroup: %s: %w", path, err)
	}
	return p, nil
}

// parsePSI reads a pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00
// total=123"): only the totals, from which any average can be derived.
func parsePSI(r io.Reader) (psi, error) {
	var p psi
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		i := strings.Index(rest, "total=")
		if i < 0 {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(rest[i+len("total="):]), 10, 64)
		if err != nil {
			return p, fmt.Errorf("bad total: %w", err)
		}
		switch kind {
		case "some":
			p.some, p.hasSome = n, true
		case "full":
			p.full, p.hasFull = n, true
		}
	}
	return p, sc.Err()
}

// readCPUMax reads v2 cpu.max ("max 100000" or "50000 100000").
func readCPUMax(path string) (cores float64, limited bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	quota, period, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if quota == "max" {
		return 0, false, nil
	}
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || p <= 0 {
		return 0, false, fmt.Errorf("cgroup: %s: cannot parse %q", path, b)
	}
	return q / p, true, nil
}

// readCFSQuota reads v1 cpu.cfs_quota_us (-1: no limit) and cpu.cfs_period_us.
func readCFSQuota(quotaPath, periodPath string) (cores float64, limited bool, err error) {
	qb, err := os.ReadFile(quotaPath)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	pb, err := os.ReadFile(periodPath)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	q, err1 := strconv.ParseInt(string(bytes.TrimSpace(qb)), 10, 64)
	p, err2 := strconv.ParseInt(string(bytes.TrimSpace(pb)), 10, 64)
	if err1 != nil || err2 != nil || p <= 0 {
		return 0, false, fmt.Errorf("cgroup: cannot parse %s (%q) and %s (%q)", quotaPath, qb, periodPath, pb)
	}
	if q < 0 {
		return 0, false, nil
	}
	return float64(q) / float64(p), true, nil
}

// readLimit reads a file holding a number or "max".
func readLimit(path string) (v uint64, limited bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %w", err)
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, false, nil
	}
	v, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroup: %s: %w", path, err)
	}
	return v, true, nil
}

// v1Unlimited: v1 writes "no limit" as the largest page-aligned value
// below 2^63 (9223372036854771712), not as "max".
func v1Unlimited(limit uint64) bool { return limit >= 1<<62 }

// workingSet is what cAdvisor and the kubelet call the working set: usage
// less the inactive page cache the kernel can drop first.
func workingSet(usage, inactiveFile uint64) float64 {
	if inactiveFile > usage {
		return 0
	}
	return float64(usage - inactiveFile)
}

func usec(v uint64) float64 { return float64(v) / 1e6 }
func nsec(v uint64) float64 { return float64(v) / 1e9 }

// findCgroup locates the cgroup of root/proc/self from its cgroup file
// and mountinfo.
func findCgroup(root string) (cgroupPlace, error) {
	fs, err := procfs.NewFS(filepath.Join(root, "proc"))
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	self, err := fs.Self()
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	groups, err := self.Cgroups()
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	mounts, err := self.MountInfo()
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	return placeCgroup(root, groups, mounts)
}

func placeCgroup(root string, groups []procfs.Cgroup, mounts []*procfs.MountInfo) (cgroupPlace, error) {
	unifiedPath, haveUnified := "", false
	v1Path := map[string]string{}
	for _, g := range groups {
		if g.HierarchyID == 0 && len(g.Controllers) == 0 {
			unifiedPath, haveUnified = g.Path, true
			continue
		}
		for _, ctrl := range g.Controllers {
			v1Path[ctrl] = g.Path
		}
	}
	var v2m *procfs.MountInfo
	v1m := map[string]*procfs.MountInfo{}
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if v2m == nil {
				v2m = m
			}
		case "cgroup":
			for _, ctrl := range v1Controllers {
				if _, ok := m.SuperOptions[ctrl]; ok && v1m[ctrl] == nil {
					v1m[ctrl] = m
				}
			}
		}
	}
	p := cgroupPlace{v1: map[string]string{}, v1mount: map[string]string{}, v1rel: map[string]string{}}
	if v2m != nil && haveUnified {
		p.v2mount = filepath.Join(root, v2m.MountPoint)
		p.v2rel = belowMount(v2m.Root, unifiedPath)
		p.unified = filepath.Join(p.v2mount, p.v2rel)
	}
	for ctrl, m := range v1m {
		path, ok := v1Path[ctrl]
		if !ok {
			continue
		}
		mount := filepath.Join(root, m.MountPoint)
		rel := belowMount(m.Root, path)
		p.v1mount[ctrl], p.v1rel[ctrl], p.v1[ctrl] = mount, rel, filepath.Join(mount, rel)
	}
	switch {
	case len(p.v1) > 0 && p.unified != "":
		p.mode = CgroupHybrid
	case len(p.v1) > 0:
		p.mode = CgroupV1
	case p.unified != "":
		p.mode = CgroupV2
	default:
		return p, errors.New("cgroup: no cgroup hierarchy of this process is mounted")
	}
	if _, err := os.Stat(p.dir()); err != nil {
		return p, fmt.Errorf("cgroup: %w", err)
	}
	return p, nil
}

// dir is the directory that must exist for the cgroup to be read.
func (p cgroupPlace) dir() string {
	if p.mode == CgroupV2 {
		return p.unified
	}
	for _, ctrl := range v1Controllers {
		if d, ok := p.v1[ctrl]; ok {
			return d
		}
	}
	return ""
}

// belowMount turns a cgroup path from /proc/self/cgroup into a path below
// a mount of the hierarchy whose root (mountinfo's 4th field) is mountRoot.
// In a private cgroup namespace both are "/" or the path is below the root;
// with the host's namespace the runtime usually mounts the container's own
// cgroup, so the path equals the mount's root. A path outside the mount
// (shown with "/.." from inside a namespace) cannot be reached through it:
// the mount's root is then the closest view of our cgroup.
func belowMount(mountRoot, path string) string {
	if strings.Contains(path, "/..") {
		return "/"
	}
	if mountRoot == "/" {
		return path
	}
	if path == mountRoot {
		return "/"
	}
	if rest, ok := strings.CutPrefix(path, mountRoot+"/"); ok {
		return "/" + rest
	}
	return "/"
}
