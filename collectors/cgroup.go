package collectors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
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
// mount). It reads the same files as containerd/cgroups' stats readers,
// with which the tests compare it (see parse.go for why not with them).
//
// Absent, zero and unlimited stay apart: a series whose file the kernel
// does not have is not emitted, and a limit only when one is set ("max",
// v1's huge "no limit" number and a CFS quota of -1 are no limit).
type Cgroup struct {
	log   *slog.Logger
	place cgroupPlace
	r     reader

	present map[string]bool // files that exist: "memory.max" (v2), "memory/memory.stat" (v1), "unified/cpu.pressure"
	rounds  int
}

// cgroupPlace is where the process's cgroup is on disk.
type cgroupPlace struct {
	mode    string
	unified string            // the cgroup's directory in the v2 hierarchy, if mounted
	v1      map[string]string // controller -> the cgroup's directory
}

// NewCgroup finds the cgroup of the process reading root/proc/self.
func NewCgroup(root string, log *slog.Logger) (*Cgroup, error) {
	place, err := findCgroup(root)
	if err != nil {
		return nil, err
	}
	c := &Cgroup{log: log, place: place}
	c.scan()
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

// file opens name in dir for one of the parse functions; errors name the
// file.
func (c *Cgroup) parse(dir, name string, parse func(r *bytes.Buffer) error) error {
	b, err := c.r.read(filepath.Join(dir, name))
	if err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	if err := parse(b); err != nil {
		return fmt.Errorf("cgroup: %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

func (c *Cgroup) value(dir, name string) (v uint64, err error) {
	err = c.parse(dir, name, func(r *bytes.Buffer) error {
		v, err = parseValue(r)
		return err
	})
	return v, err
}

func (c *Cgroup) kv(dir, name string, set func(k []byte, v uint64)) error {
	return c.parse(dir, name, func(r *bytes.Buffer) error { return parseKV(r, set) })
}

func (c *Cgroup) collectV2(emit func(Sample)) error {
	dir, has := c.place.unified, c.present
	var errs []error
	keep := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return err == nil || errors.Is(err, errSkipped)
	}
	if has["cpu.stat"] {
		var usage, user, system, periods, throttled, throttledUsec uint64
		if keep(c.kv(dir, "cpu.stat", func(k []byte, v uint64) {
			switch string(k) {
			case "usage_usec":
				usage = v
			case "user_usec":
				user = v
			case "system_usec":
				system = v
			case "nr_periods":
				periods = v
			case "nr_throttled":
				throttled = v
			case "throttled_usec":
				throttledUsec = v
			}
		})) {
			counter(emit, "container.cpu.usage_seconds_total", usec(usage), nil)
			counter(emit, "container.cpu.user_seconds_total", usec(user), nil)
			counter(emit, "container.cpu.system_seconds_total", usec(system), nil)
			// cpu.stat has the throttling lines only where the cpu
			// controller is enabled, which is when cpu.max exists.
			if has["cpu.max"] {
				counter(emit, "container.cpu.periods_total", float64(periods), nil)
				counter(emit, "container.cpu.throttled_periods_total", float64(throttled), nil)
				counter(emit, "container.cpu.throttled_seconds_total", usec(throttledUsec), nil)
			}
		}
	}
	if has["cpu.max"] {
		var cores float64
		var limited bool
		if keep(c.parse(dir, "cpu.max", func(r *bytes.Buffer) (err error) {
			cores, limited, err = parseCPUMax(r)
			return err
		})) && limited {
			gauge(emit, "container.cpu.limit_cores", cores, nil)
		}
	}
	var usage uint64
	haveUsage := false
	if has["memory.current"] {
		var err error
		usage, err = c.value(dir, "memory.current")
		if haveUsage = keep(err); haveUsage {
			gauge(emit, "container.memory.usage_bytes", float64(usage), nil)
		}
	}
	c.limit(emit, &errs, dir, "memory.max", "container.memory.limit_bytes")
	if has["memory.stat"] {
		var anon, file, inactiveFile uint64
		if keep(c.kv(dir, "memory.stat", func(k []byte, v uint64) {
			switch string(k) {
			case "anon":
				anon = v
			case "file":
				file = v
			case "inactive_file":
				inactiveFile = v
			}
		})) {
			gauge(emit, "container.memory.rss_bytes", float64(anon), nil)
			gauge(emit, "container.memory.cache_bytes", float64(file), nil)
			if haveUsage {
				gauge(emit, "container.memory.working_set_bytes", workingSet(usage, inactiveFile), nil)
			}
		}
	}
	c.gaugeFile(emit, &errs, dir, "memory.peak", "container.memory.peak_bytes")
	c.gaugeFile(emit, &errs, dir, "memory.swap.current", "container.memory.swap_bytes")
	c.limit(emit, &errs, dir, "memory.swap.max", "container.memory.swap_limit_bytes")
	if has["memory.events"] {
		var maxHits, oom, oomKill uint64
		if keep(c.kv(dir, "memory.events", func(k []byte, v uint64) {
			switch string(k) {
			case "max":
				maxHits = v
			case "oom":
				oom = v
			case "oom_kill":
				oomKill = v
			}
		})) {
			// "max" counts the times usage hit the limit: v1's failcnt.
			counter(emit, "container.memory.failcnt_total", float64(maxHits), nil)
			counter(emit, "container.memory.oom_events_total", float64(oom), nil)
			counter(emit, "container.memory.oom_kills_total", float64(oomKill), nil)
		}
	}
	c.gaugeFile(emit, &errs, dir, "pids.current", "container.pids.current")
	c.limit(emit, &errs, dir, "pids.max", "container.pids.limit")
	if has["io.stat"] {
		var rb, wb, ro, wo uint64
		if keep(c.parse(dir, "io.stat", func(r *bytes.Buffer) (err error) {
			rb, wb, ro, wo, err = parseIOStat(r)
			return err
		})) {
			emitIO(emit, rb, wb, ro, wo)
		}
	}
	c.pressure(emit, &errs, dir, "")
	return errors.Join(errs...)
}

// gaugeFile emits a one-number file as a gauge, if the file exists.
func (c *Cgroup) gaugeFile(emit func(Sample), errs *[]error, dir, file, name string) {
	if !c.present[c.key(dir, file)] {
		return
	}
	v, err := c.value(dir, file)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	gauge(emit, name, float64(v), nil)
}

// limit emits a limit file ("max" or a number) when a limit is set.
func (c *Cgroup) limit(emit func(Sample), errs *[]error, dir, file, name string) {
	if !c.present[c.key(dir, file)] {
		return
	}
	v, err := c.value(dir, file)
	if err != nil {
		*errs = append(*errs, err)
		return
	}
	if v != math.MaxUint64 && !v1Unlimited(v) {
		gauge(emit, name, float64(v), nil)
	}
}

// key names file in dir in the present set.
func (c *Cgroup) key(dir, file string) string {
	if c.place.mode == CgroupV2 {
		return file
	}
	if dir == c.place.unified {
		return "unified/" + file
	}
	for ctrl, d := range c.place.v1 {
		if d == dir {
			return ctrl + "/" + file
		}
	}
	return file
}

// pressure emits the PSI totals of dir; prefix is the present-set prefix.
func (c *Cgroup) pressure(emit func(Sample), errs *[]error, dir, prefix string) {
	for _, res := range [...]string{"cpu", "memory", "io"} {
		file := res + ".pressure"
		if !c.present[prefix+file] {
			continue
		}
		var p psi
		if err := c.parse(dir, file, func(r *bytes.Buffer) (err error) {
			p, err = parsePSI(r)
			return err
		}); err != nil {
			*errs = append(*errs, err)
			continue
		}
		names := psiNames[res]
		if p.hasSome {
			counter(emit, names[0], usec(p.some), nil)
		}
		if p.hasFull {
			counter(emit, names[1], usec(p.full), nil)
		}
	}
}

var psiNames = map[string][2]string{
	"cpu":    {"container.pressure.cpu.some_seconds_total", "container.pressure.cpu.full_seconds_total"},
	"memory": {"container.pressure.memory.some_seconds_total", "container.pressure.memory.full_seconds_total"},
	"io":     {"container.pressure.io.some_seconds_total", "container.pressure.io.full_seconds_total"},
}

func (c *Cgroup) collectV1(emit func(Sample)) error {
	has := c.present
	var errs []error
	keep := func(err error) bool {
		if err != nil {
			errs = append(errs, err)
		}
		return err == nil || errors.Is(err, errSkipped)
	}
	if dir, ok := c.place.v1["cpuacct"]; ok {
		total, err := c.value(dir, "cpuacct.usage")
		var user, system uint64
		if keep(err) && keep(c.kv(dir, "cpuacct.stat", func(k []byte, v uint64) {
			switch string(k) {
			case "user":
				user = v
			case "system":
				system = v
			}
		})) {
			counter(emit, "container.cpu.usage_seconds_total", nsec(total), nil)
			// cpuacct.stat is in USER_HZ ticks.
			counter(emit, "container.cpu.user_seconds_total", float64(user)/userHZ, nil)
			counter(emit, "container.cpu.system_seconds_total", float64(system)/userHZ, nil)
		}
	}
	if dir, ok := c.place.v1["cpu"]; ok {
		var periods, throttled, throttledNs uint64
		if keep(c.kv(dir, "cpu.stat", func(k []byte, v uint64) {
			switch string(k) {
			case "nr_periods":
				periods = v
			case "nr_throttled":
				throttled = v
			case "throttled_time":
				throttledNs = v
			}
		})) {
			counter(emit, "container.cpu.periods_total", float64(periods), nil)
			counter(emit, "container.cpu.throttled_periods_total", float64(throttled), nil)
			counter(emit, "container.cpu.throttled_seconds_total", nsec(throttledNs), nil)
		}
		if has["cpu/cpu.cfs_quota_us"] && has["cpu/cpu.cfs_period_us"] {
			var quota int64
			err := c.parse(dir, "cpu.cfs_quota_us", func(r *bytes.Buffer) error {
				b, _ := content(r)
				var err error
				quota, err = atoi(bytes.TrimSpace(b))
				return err
			})
			period, err2 := c.value(dir, "cpu.cfs_period_us")
			if keep(err) && keep(err2) && quota > 0 && period > 0 {
				gauge(emit, "container.cpu.limit_cores", float64(quota)/float64(period), nil)
			}
		}
	}
	if dir, ok := c.place.v1["memory"]; ok {
		usage, err := c.value(dir, "memory.usage_in_bytes")
		haveUsage := keep(err)
		if haveUsage {
			gauge(emit, "container.memory.usage_bytes", float64(usage), nil)
		}
		c.limit(emit, &errs, dir, "memory.limit_in_bytes", "container.memory.limit_bytes")
		var rss, cache, inactiveFile uint64
		// total_* include child cgroups, as v2's memory.stat does.
		if keep(c.kv(dir, "memory.stat", func(k []byte, v uint64) {
			switch string(k) {
			case "total_rss":
				rss = v
			case "total_cache":
				cache = v
			case "total_inactive_file":
				inactiveFile = v
			}
		})) {
			gauge(emit, "container.memory.rss_bytes", float64(rss), nil)
			gauge(emit, "container.memory.cache_bytes", float64(cache), nil)
			if haveUsage {
				gauge(emit, "container.memory.working_set_bytes", workingSet(usage, inactiveFile), nil)
			}
		}
		c.gaugeFile(emit, &errs, dir, "memory.max_usage_in_bytes", "container.memory.peak_bytes")
		if has["memory/memory.failcnt"] {
			if v, err := c.value(dir, "memory.failcnt"); keep(err) {
				counter(emit, "container.memory.failcnt_total", float64(v), nil)
			}
		}
		// memsw is memory plus swap, present with swap accounting only.
		if haveUsage && has["memory/memory.memsw.usage_in_bytes"] {
			if v, err := c.value(dir, "memory.memsw.usage_in_bytes"); keep(err) && v >= usage {
				gauge(emit, "container.memory.swap_bytes", float64(v-usage), nil)
			}
		}
		if has["memory/memory.oom_control"] {
			var kills uint64
			haveKills := false
			if keep(c.kv(dir, "memory.oom_control", func(k []byte, v uint64) {
				if string(k) == "oom_kill" { // since Linux 4.13
					kills, haveKills = v, true
				}
			})) && haveKills {
				counter(emit, "container.memory.oom_kills_total", float64(kills), nil)
			}
		}
	}
	if dir, ok := c.place.v1["pids"]; ok {
		c.gaugeFile(emit, &errs, dir, "pids.current", "container.pids.current")
		c.limit(emit, &errs, dir, "pids.max", "container.pids.limit")
	}
	if dir, ok := c.place.v1["blkio"]; ok {
		// The recursive throttle files count every child cgroup's IO, the
		// plain ones only this cgroup's processes'; older kernels have
		// only those.
		bytesFile, opsFile := "blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive"
		if !has["blkio/"+bytesFile] {
			bytesFile, opsFile = "blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced"
		}
		var rb, wb, ro, wo uint64
		errB := c.parse(dir, bytesFile, func(r *bytes.Buffer) (err error) { rb, wb, err = parseBlkio(r); return err })
		errO := c.parse(dir, opsFile, func(r *bytes.Buffer) (err error) { ro, wo, err = parseBlkio(r); return err })
		if keep(errB) && keep(errO) {
			emitIO(emit, rb, wb, ro, wo)
		}
	}
	// A hybrid host's v2 hierarchy has no controllers but still accounts
	// pressure per cgroup.
	if c.place.mode == CgroupHybrid {
		c.pressure(emit, &errs, c.place.unified, "unified/")
	}
	return errors.Join(errs...)
}

func emitIO(emit func(Sample), rb, wb, ro, wo uint64) {
	counter(emit, "container.io.read_bytes_total", float64(rb), nil)
	counter(emit, "container.io.write_bytes_total", float64(wb), nil)
	counter(emit, "container.io.reads_total", float64(ro), nil)
	counter(emit, "container.io.writes_total", float64(wo), nil)
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

// seconds is d in seconds by one division, so that the value prints as
// short as d does (1.434591254, not time.Duration.Seconds' sum of whole
// and fractional seconds, 1.4345912539999999).
func seconds(d time.Duration) float64 { return float64(d) / float64(time.Second) }
func nsec(v uint64) float64           { return float64(v) / 1e9 }

// findCgroup locates the cgroup of root/proc/self from its cgroup file
// and mountinfo.
func findCgroup(root string) (cgroupPlace, error) {
	var r reader
	b, err := r.read(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	groups, err := parseCgroupFile(b)
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: /proc/self/cgroup: %w", err)
	}
	b, err = r.read(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: %w", err)
	}
	mounts, err := parseMountInfo(b)
	if err != nil {
		return cgroupPlace{}, fmt.Errorf("cgroup: /proc/self/mountinfo: %w", err)
	}
	return placeCgroup(root, groups, mounts)
}

func placeCgroup(root string, groups []cgroupLine, mounts []mount) (cgroupPlace, error) {
	unifiedPath, haveUnified := "", false
	v1Path := map[string]string{}
	for _, g := range groups {
		if g.id == 0 && len(g.controllers) == 0 {
			unifiedPath, haveUnified = g.path, true
			continue
		}
		for _, ctrl := range g.controllers {
			v1Path[ctrl] = g.path
		}
	}
	var v2m *mount
	v1m := map[string]*mount{}
	for i := range mounts {
		m := &mounts[i]
		switch m.fstype {
		case "cgroup2":
			if v2m == nil {
				v2m = m
			}
		case "cgroup":
			for _, ctrl := range v1Controllers {
				if slices.Contains(m.options, ctrl) && v1m[ctrl] == nil {
					v1m[ctrl] = m
				}
			}
		}
	}
	p := cgroupPlace{v1: map[string]string{}}
	if v2m != nil && haveUnified {
		p.unified = filepath.Join(root, v2m.point, belowMount(v2m.root, unifiedPath))
	}
	for ctrl, m := range v1m {
		if path, ok := v1Path[ctrl]; ok {
			p.v1[ctrl] = filepath.Join(root, m.point, belowMount(m.root, path))
		}
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

// OOMKills reads how many processes the kernel's OOM killer has killed in
// the cgroup mounted at root (the container's own, "/sys/fs/cgroup"): the
// oom_kill line of cgroup v2 memory.events, or of v1 memory.oom_control
// (Linux 4.13 and later). ok is false when neither has one. The program
// checks read it to tell an OOM kill from another SIGKILL.
func OOMKills(root string) (n uint64, ok bool) {
	for _, f := range []string{"memory.events", "memory/memory.oom_control"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		parseKV(bytes.NewBuffer(b), func(k []byte, v uint64) {
			if string(k) == "oom_kill" {
				n, ok = v, true
			}
		})
		if ok {
			return n, true
		}
	}
	return 0, false
}
