package collectors

import (
	"errors"
	"math"
	"strings"
	"testing"
)

const v2Group = "/process_api/55b2427d991aab4be1a1ee5fcde8756f"

// v2Tree is the v2 fixture as the container saw it: its own cgroup
// namespace showing the cgroup's path below a mount of the whole hierarchy.
func v2Tree(t *testing.T) *tree {
	tr := newTree(t)
	tr.proc("621", fixture(t, v2Fixture+"/cgroup-v2/_proc_self_cgroup"), fixture(t, v2Fixture+"/cgroup-v2/_mountinfo"), "")
	tr.copyDir(v2Fixture+"/cgroup-v2", "sys/fs/cgroup"+v2Group)
	return tr
}

func newCgroupT(t *testing.T, tr *tree) *Cgroup {
	t.Helper()
	c, err := NewCgroup(tr.root, discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCgroupV2(t *testing.T) {
	c := newCgroupT(t, v2Tree(t))
	if c.Mode() != CgroupV2 {
		t.Fatalf("mode %s, want v2", c.Mode())
	}
	s, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Counter, map[string]float64{
		"container.cpu.usage_seconds_total":     4.097055,
		"container.cpu.user_seconds_total":      3.988009,
		"container.cpu.system_seconds_total":    0.109046,
		"container.cpu.periods_total":           86,
		"container.cpu.throttled_periods_total": 82,
		"container.cpu.throttled_seconds_total": 4.805355,
		"container.memory.failcnt_total":        104,
		"container.memory.oom_events_total":     2,
		"container.memory.oom_kills_total":      2,
		"container.io.read_bytes_total":         2310144,
		"container.io.write_bytes_total":        104857600,
		"container.io.reads_total":              182,
		"container.io.writes_total":             100,

		"container.pressure.cpu.some_seconds_total":    3.848153,
		"container.pressure.cpu.full_seconds_total":    3.848153,
		"container.pressure.memory.some_seconds_total": 0.000715,
		"container.pressure.io.full_seconds_total":     0.005829,
	})
	s.want(t, Gauge, map[string]float64{
		"container.cpu.limit_cores":          0.5,
		"container.memory.usage_bytes":       458752,
		"container.memory.working_set_bytes": 458752 - 24576,
		"container.memory.limit_bytes":       64 << 20,
		"container.memory.rss_bytes":         114688,
		"container.memory.cache_bytes":       36864,
		"container.memory.peak_bytes":        64 << 20,
		"container.memory.swap_bytes":        0,
		// memory.swap.max is 0: a limit that is set, and zero.
		"container.memory.swap_limit_bytes": 0,
		"container.pids.current":            1,
		"container.pids.limit":              50,
	})
}

// TestCgroupV2AbsentAndUnlimited: files an older kernel lacks are absent
// series, not zeros; "max" limits are not emitted.
func TestCgroupV2AbsentAndUnlimited(t *testing.T) {
	tr := v2Tree(t)
	dir := "sys/fs/cgroup" + v2Group + "/"
	for _, f := range []string{"memory.peak", "memory.swap.current", "memory.swap.max", "memory.swap.peak", "io.pressure", "memory.events"} {
		tr.remove(dir + f)
	}
	tr.write(dir+"cpu.max", "max 100000\n")
	tr.write(dir+"memory.max", "max\n")
	tr.write(dir+"pids.max", "max\n")
	tr.write(dir+"memory.current", "0\n") // present and zero
	s, err := collect(t, newCgroupT(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	s.absent(t, "container.cpu.limit_cores", "container.memory.limit_bytes", "container.pids.limit",
		"container.memory.peak_bytes", "container.memory.swap_bytes", "container.memory.swap_limit_bytes",
		"container.pressure.io.some_seconds_total", "container.memory.oom_kills_total")
	s.want(t, Gauge, map[string]float64{"container.memory.usage_bytes": 0, "container.memory.working_set_bytes": 0})
	s.want(t, Counter, map[string]float64{"container.cpu.throttled_periods_total": 82})
}

// TestCgroupV2Namespaces: with a private cgroup namespace the container's
// cgroup is the mount's root ("0::/"); with the host's, the runtime mounts
// the container's cgroup and /proc/self/cgroup shows its full path, which
// is the mount's root too.
func TestCgroupV2Namespaces(t *testing.T) {
	cases := []struct{ name, cgroup, mountRoot string }{
		{"private", "0::/\n", "/"},
		{"host", "0::/docker/3074f46\n", "/docker/3074f46"},
		{"moved out of the namespace root", "0::/../../elsewhere\n", "/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := newTree(t)
			mi := "32 23 0:28 " + c.mountRoot + " /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
			tr.proc("1", c.cgroup, mi, "")
			tr.copyDir(v2Fixture+"/cgroup-v2", "sys/fs/cgroup")
			s, err := collect(t, newCgroupT(t, tr))
			if err != nil {
				t.Fatal(err)
			}
			s.want(t, Gauge, map[string]float64{"container.memory.limit_bytes": 64 << 20})
		})
	}
}

const v1Group = "/process_api/8a4bdeb690d4f41831e52726b03ebd67"

// v1Tree is the hybrid fixture: v1 controllers, each with the snapshot's
// cgroup, and an empty v2 hierarchy at /sys/fs/cgroup/unified.
func v1Tree(t *testing.T) *tree {
	tr := newTree(t)
	cg := "9:name=systemd:/\n8:pids:" + v1Group + "\n7:blkio:" + v1Group + "\n6:freezer:/\n5:devices:/\n4:memory:" + v1Group +
		"\n3:cpuset:/\n2:cpuacct:" + v1Group + "\n1:cpu:" + v1Group + "\n0::/\n"
	tr.proc("13130", cg, fixture(t, v1Fixture+"/cgroup-v1/_mountinfo"), "")
	tr.write("proc/partitions", fixture(t, v1Fixture+"/proc-partitions"))
	for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio"} {
		tr.copyDir(v1Fixture+"/cgroup-v1/"+ctrl, "sys/fs/cgroup/"+ctrl+v1Group)
	}
	tr.write("sys/fs/cgroup/unified/cgroup.procs", "")
	return tr
}

func TestCgroupV1Hybrid(t *testing.T) {
	c := newCgroupT(t, v1Tree(t))
	if c.Mode() != CgroupHybrid {
		t.Fatalf("mode %s, want hybrid", c.Mode())
	}
	s, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Counter, map[string]float64{
		"container.cpu.usage_seconds_total": 2.042506715,
		// cpuacct.stat is in USER_HZ ticks (188 and 15).
		"container.cpu.user_seconds_total":      1.88,
		"container.cpu.system_seconds_total":    0.15,
		"container.cpu.periods_total":           42,
		"container.cpu.throttled_periods_total": 40,
		"container.cpu.throttled_seconds_total": 2.941935109,
		"container.memory.failcnt_total":        165,
		"container.memory.oom_kills_total":      1,
		"container.io.read_bytes_total":         0,
		"container.io.writes_total":             0,
	})
	s.want(t, Gauge, map[string]float64{
		"container.cpu.limit_cores":          0.5,
		"container.memory.usage_bytes":       327680,
		"container.memory.working_set_bytes": 327680 - 8192,
		"container.memory.limit_bytes":       64 << 20,
		"container.memory.rss_bytes":         114688,
		"container.memory.cache_bytes":       16384,
		"container.memory.peak_bytes":        64 << 20,
		"container.memory.swap_bytes":        0, // memsw.usage - usage
		"container.pids.current":             1,
		"container.pids.limit":               50,
	})
	// v1 has no OOM event count, and this unified hierarchy no pressure.
	s.absent(t, "container.memory.oom_events_total", "container.pressure.cpu.some_seconds_total")
}

// TestCgroupV1Unlimited: v1 writes "no limit" as a huge number (memory),
// -1 (CFS quota) or "max" (pids); none is a limit.
func TestCgroupV1Unlimited(t *testing.T) {
	tr := v1Tree(t)
	tr.write("sys/fs/cgroup/memory"+v1Group+"/memory.limit_in_bytes", "9223372036854771712\n")
	tr.write("sys/fs/cgroup/cpu"+v1Group+"/cpu.cfs_quota_us", "-1\n")
	tr.write("sys/fs/cgroup/pids"+v1Group+"/pids.max", "max\n")
	s, err := collect(t, newCgroupT(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	s.absent(t, "container.memory.limit_bytes", "container.cpu.limit_cores", "container.pids.limit")
	s.want(t, Gauge, map[string]float64{"container.pids.current": 1})
}

// TestCgroupHybridPressure: a hybrid host's v2 hierarchy accounts pressure
// per cgroup even without controllers.
func TestCgroupHybridPressure(t *testing.T) {
	tr := v1Tree(t)
	for _, res := range []string{"cpu", "memory", "io"} {
		tr.write("sys/fs/cgroup/unified/"+res+".pressure", fixture(t, v2Fixture+"/cgroup-v2/"+res+".pressure"))
	}
	s, err := collect(t, newCgroupT(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Counter, map[string]float64{
		"container.pressure.cpu.some_seconds_total": 3.848153,
		"container.pressure.io.some_seconds_total":  0.005829,
	})
}

// TestCgroupV1CoMounted: cpu and cpuacct share one hierarchy mounted as
// /sys/fs/cgroup/cpu,cpuacct (systemd's layout), with a host namespace
// whose runtime mounted the container's own cgroup.
func TestCgroupV1CoMounted(t *testing.T) {
	tr := newTree(t)
	const group = "/docker/3074f46"
	mi := "31 30 0:28 " + group + " /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n" +
		"34 30 0:31 " + group + " /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	tr.proc("7", "4:memory:"+group+"\n1:cpu,cpuacct:"+group+"\n", mi, "")
	tr.copyDir(v1Fixture+"/cgroup-v1/cpu", "sys/fs/cgroup/cpu,cpuacct")
	tr.copyDir(v1Fixture+"/cgroup-v1/cpuacct", "sys/fs/cgroup/cpu,cpuacct")
	tr.copyDir(v1Fixture+"/cgroup-v1/memory", "sys/fs/cgroup/memory")
	c := newCgroupT(t, tr)
	if c.Mode() != CgroupV1 {
		t.Fatalf("mode %s, want v1", c.Mode())
	}
	s, err := collect(t, c)
	if err != nil {
		t.Fatal(err)
	}
	s.want(t, Counter, map[string]float64{"container.cpu.usage_seconds_total": 2.042506715, "container.cpu.throttled_periods_total": 40})
	s.want(t, Gauge, map[string]float64{"container.cpu.limit_cores": 0.5, "container.memory.limit_bytes": 64 << 20})
	s.absent(t, "container.pids.current")
}

func TestCgroupNotFound(t *testing.T) {
	tr := newTree(t)
	tr.proc("1", "0::/\n", "22 1 0:21 / /proc rw - proc proc rw\n", "")
	_, err := NewCgroup(tr.root, discard)
	if err == nil || !strings.Contains(err.Error(), "no cgroup hierarchy") {
		t.Fatalf("err = %v", err)
	}
}

// TestCgroupBadFile: a file that does not parse is an error naming it, and
// the rest is still reported.
func TestCgroupBadFile(t *testing.T) {
	tr := v2Tree(t)
	tr.write("sys/fs/cgroup"+v2Group+"/cpu.max", "lots\n")
	s, err := collect(t, newCgroupT(t, tr))
	if err == nil || !strings.Contains(err.Error(), "cpu.max") {
		t.Fatalf("err = %v, want one naming cpu.max", err)
	}
	s.want(t, Gauge, map[string]float64{"container.memory.limit_bytes": 64 << 20})
}

func TestParsePSI(t *testing.T) {
	p, err := parsePSI(strings.NewReader("some avg10=19.99 avg60=5.78 avg300=1.32 total=3848153\n"))
	if err != nil || !p.hasSome || p.hasFull || p.some != 3848153 {
		t.Fatalf("got %+v, %v", p, err)
	}
	if _, err := parsePSI(strings.NewReader("some total=x\n")); err == nil {
		t.Fatal("bad total accepted")
	}
}

func TestV1Unlimited(t *testing.T) {
	if !v1Unlimited(9223372036854771712) || !v1Unlimited(math.MaxUint64) || v1Unlimited(64<<20) {
		t.Fatal("v1Unlimited")
	}
}

// TestCgroupV2OddMemoryStat: a negative value in memory.stat reads as zero
// (as containerd's parser has it) and a line that cannot be read is
// skipped and reported: neither loses the file's other keys.
func TestCgroupV2OddMemoryStat(t *testing.T) {
	tr := v2Tree(t)
	tr.write("sys/fs/cgroup"+v2Group+"/memory.stat", fixture(t, "testdata/odd/memory.stat"))
	s, err := collect(t, newCgroupT(t, tr))
	if err == nil || !strings.Contains(err.Error(), "garbage line") {
		t.Errorf("the skipped line is not reported: %v", err)
	}
	s.want(t, Gauge, map[string]float64{
		"container.memory.rss_bytes":         114688,
		"container.memory.cache_bytes":       36864,
		"container.memory.working_set_bytes": 458752 - 24576,
	})
}

func TestParseKVClampsNegatives(t *testing.T) {
	got := map[string]uint64{}
	err := parseKV(strings.NewReader("a -5\nb 7\nc -99999999999999999999999\nd x\ne 1 2\nf 3\n"), func(k []byte, v uint64) { got[string(k)] = v })
	want := map[string]uint64{"a": 0, "b": 7, "c": 0, "f": 3}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if !errors.Is(err, errSkipped) || !strings.Contains(err.Error(), "d:") {
		t.Fatalf("error %v, want the first skipped line named", err)
	}
}

func TestOOMKills(t *testing.T) {
	if n, ok := OOMKills(v2Fixture + "/cgroup-v2"); !ok || n != 2 {
		t.Errorf("v2: %d %v, want 2", n, ok)
	}
	if n, ok := OOMKills(v1Fixture + "/cgroup-v1"); !ok || n != 1 {
		t.Errorf("v1: %d %v, want 1", n, ok)
	}
	if _, ok := OOMKills(t.TempDir()); ok {
		t.Error("no cgroup files, yet a count")
	}
}
