//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/carbontest"
	"github.com/stewardhq/steward/internal/testutil"
)

// kernelPackage is Debian's cloud kernel for amd64 (few drivers, quick to
// boot; cgroup v2 with PSI on). The meta-package names the current one.
const kernelMeta = "linux-image-cloud-amd64"

// debianKernel returns the kernel image and the brd (RAM disk) module of
// Debian's current cloud kernel, downloaded with apt-get download (never
// installed) and unpacked once into the cache directory.
func debianKernel(t *testing.T) (vmlinuz, brd string) {
	t.Helper()
	out, err := exec.Command("apt-cache", "depends", kernelMeta).Output()
	if err != nil {
		t.Fatalf("apt-cache depends %s: %v (run apt-get update first; bash .ci/test does)", kernelMeta, err)
	}
	pkg := regexp.MustCompile(`Depends: (linux-image-[0-9][^\s]*-cloud-amd64)`).FindSubmatch(out)
	if pkg == nil {
		t.Fatalf("apt-cache depends %s names no kernel:\n%s", kernelMeta, out)
	}
	dir := filepath.Join(cacheDir, string(pkg[1]))
	vmlinuz, brd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "brd.ko")
	if _, err := os.Stat(brd); err == nil {
		return vmlinuz, brd
	}
	tmp, err := os.MkdirTemp(cacheDir+"/..", "kernel-")
	if err != nil {
		os.MkdirAll(cacheDir, 0o755)
		if tmp, err = os.MkdirTemp(cacheDir, "kernel-"); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o777) // apt's _apt user downloads into it
	for _, cmd := range [][]string{
		{"apt-get", "download", "-q", string(pkg[1])},
		{"sh", "-c", "dpkg-deb -x linux-image-*.deb x"},
	} {
		c := exec.Command(cmd[0], cmd[1:]...)
		c.Dir = tmp
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	images, _ := filepath.Glob(filepath.Join(tmp, "x/boot/vmlinuz-*"))
	mods, _ := filepath.Glob(filepath.Join(tmp, "x/lib/modules/*/kernel/drivers/block/brd.ko*"))
	if len(images) != 1 || len(mods) != 1 || strings.HasSuffix(mods[0], ".xz") {
		t.Fatalf("unexpected package layout: %v %v", images, mods)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(images[0], vmlinuz, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(mods[0], brd, 0o644); err != nil {
		t.Fatal(err)
	}
	return vmlinuz, brd
}

// initramfs builds the VM's root: Debian's busybox-static, bash and
// util-linux's unshare (with their libraries, for render.sh), the static
// steward, the files of testdata/vm, render.sh and the demo config.
func initramfs(t *testing.T, brd string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	for _, d := range []string{"bin", "usr/bin", "proc", "sys", "dev", "tmp", "var/tmp", "run", "etc", "e2e",
		"lib/modules", "repo/configs/dashboards", "repo/configs/examples"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	demoapp := filepath.Join(t.TempDir(), "demoapp")
	build := exec.Command("go", "build", "-trimpath", "-o", demoapp, "./configs/dashboards/demoapp")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the demo app: %v\n%s", err, out)
	}
	files := map[string]string{
		demoapp:            "demoapp",
		"/bin/busybox":     "bin/busybox",
		"/bin/bash":        "bin/bash",
		"/usr/bin/unshare": "usr/bin/unshare",
		stewardBin:         "steward",
		brd:                "lib/modules/brd.ko",
		filepath.Join(repo, "configs/dashboards/render.sh"): "repo/configs/dashboards/render.sh",
		filepath.Join(repo, "configs/examples/demo.toml"):   "repo/configs/examples/demo.toml",
		"testdata/vm/init":      "init",
		"testdata/vm/vm.toml":   "e2e/vm.toml",
		"testdata/vm/box.toml":  "e2e/box.toml",
		"testdata/vm/checks.sh": "e2e/checks.sh",
		"testdata/vm/work.sh":   "e2e/work.sh",
	}
	for _, bin := range []string{"/bin/bash", "/usr/bin/unshare"} {
		out, err := exec.Command("ldd", bin).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", bin, err)
		}
		for _, m := range regexp.MustCompile(`(?m)(/\S+\.so[.\d]*) \(0x`).FindAllSubmatch(out, -1) {
			lib := string(m[1])
			files[lib] = strings.TrimPrefix(lib, "/")
		}
	}
	for from, to := range files {
		dst := filepath.Join(root, to)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := copyFile(from, dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if _, err := os.Lstat(filepath.Join(root, "bin", applet)); err != nil {
			os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
	}
	os.Symlink("../../bin/bash", filepath.Join(root, "usr/bin/bash"))
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	img := filepath.Join(work, "initramfs.cpio.gz")
	cmd := exec.Command("sh", "-c", "find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"+img)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio (Debian package cpio): %v\n%s", err, out)
	}
	return img
}

// TestCgroupV2VM boots Debian's kernel with pure cgroup v2 under qemu, once,
// with steward as the machine's own PID 1 (testdata/vm/init execs it).
// Inside: a "box" container on cgroup v2 whose steward reports its limits,
// throttling, pressure, io, pids and an OOM kill as the kernel's files
// say; render.sh's blue and green deployments, whose printed series come
// back over the serial port into a real carbon here; and at the end
// steward stops its programs in reverse order, has reaped every orphan,
// and powers the machine off instead of exiting (which would panic the
// kernel).
func TestCgroupV2VM(t *testing.T) {
	t.Parallel()
	vmlinuz, brd := debianKernel(t)
	img := initramfs(t, brd)
	dir := t.TempDir()
	console, serial, logfile := filepath.Join(dir, "console.log"), filepath.Join(dir, "serial.log"), filepath.Join(dir, "steward.log")
	args := []string{
		// Software emulation: the nested KVM of these machines hangs the guest.
		"-accel", "tcg",
		"-m", "1024", "-smp", "1", "-no-reboot", "-nodefaults", "-display", "none", "-nic", "none",
		"-kernel", vmlinuz, "-initrd", img,
		"-append", "console=ttyS0 panic=-1 loglevel=4 psi=1",
		"-serial", "file:" + console, "-serial", "file:" + serial, "-serial", "file:" + logfile,
	}
	qemu := exec.Command("qemu-system-x86_64", args...)
	var qout testutil.LockedBuffer
	qemu.Stdout, qemu.Stderr = &qout, &qout
	qemu.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatalf("qemu-system-x86_64 (Debian package qemu-system-x86): %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- qemu.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("qemu: %v\n%s", err, qout.String())
		}
	case <-time.After(15 * time.Minute): // a hang guard only
		qemu.Process.Kill()
		<-done
		b, _ := os.ReadFile(console)
		s, _ := os.ReadFile(serial)
		t.Fatalf("the VM did not power off\nconsole:\n%s\nserial:\n%s", tail(b, 4000), tail(s, 8000))
	}
	t.Logf("the VM ran for %v (boot, checks, render.sh's 70 s, power off)", time.Since(began).Round(time.Second))
	conb, _ := os.ReadFile(console)
	serb, _ := os.ReadFile(serial)
	logb, _ := os.ReadFile(logfile)
	con := strings.ReplaceAll(string(conb), "\r", "")
	out := strings.ReplaceAll(string(serb), "\r", "")
	slog := strings.ReplaceAll(string(logb), "\r", "")
	t.Cleanup(func() {
		if t.Failed() {
			// Whole, for a look: the test's temporary directory goes.
			keep := filepath.Join(os.TempDir(), "steward-e2e-vm")
			os.MkdirAll(keep, 0o755)
			copyFile(console, filepath.Join(keep, "console.log"), 0o644)
			copyFile(serial, filepath.Join(keep, "serial.log"), 0o644)
			copyFile(logfile, filepath.Join(keep, "steward.log"), 0o644)
			t.Logf("console and serial output kept in %s", keep)
			t.Logf("console:\n%s", tail([]byte(con), 4000))
			t.Logf("the programs' output:\n%s", tail([]byte(out), 8000))
			t.Logf("steward's log:\n%s", tail([]byte(slog), 8000))
		}
	})
	v := parseVM(out, slog)

	t.Run("power off", func(t *testing.T) {
		if strings.Contains(con, "Kernel panic") {
			t.Fatal("the kernel panicked: PID 1 exited")
		}
		if !strings.Contains(con, "reboot: Power down") {
			t.Fatal("the kernel did not power down")
		}
		if !strings.Contains(slog, "steward: exit code 0; powering off") {
			t.Fatal("steward did not say it powers off")
		}
	})
	t.Run("PID 1 stops in order and reaps", func(t *testing.T) {
		// Steward's log (the programs' own lines cross one pipe each, so
		// their order across programs is not kept): started in dependency
		// order, stopped in reverse, each once the one after it is down.
		var seq []string
		for _, e := range v.events {
			if m, _ := e["msg"].(string); strings.HasPrefix(m, "program ") {
				seq = append(seq, fmt.Sprintf("%s %v", m, e["program"]))
			}
		}
		order(t, strings.Join(seq, "\n")+"\n", "program started first\n", "program started second\n",
			"program started orphans\n", "program started checks\n", "program exited checks\n",
			"program stopping orphans\n", "program stopped orphans\n", "program stopping second\n",
			"program stopped second\n", "program stopping first\n", "program stopped first\n")
		for _, line := range []string{"[orphans] orphans: left 5", "checks: done", "[second] second: stopping", "[first] first: stopping"} {
			if !strings.Contains(out, line) {
				t.Errorf("%q missing", line)
			}
		}
		var stopped map[string]any
		for _, e := range v.events {
			if e["msg"] == "all programs stopped" {
				stopped = e
			}
		}
		if stopped == nil {
			t.Fatal("no 'all programs stopped'")
		}
		if n, _ := stopped["orphans_reaped"].(float64); n < 5 {
			t.Errorf("orphans_reaped = %v, want at least the 5 orphans", stopped["orphans_reaped"])
		}
		if v.result["zombies"] != "0" {
			t.Errorf("zombies left: %q", v.result["zombies"])
		}
	})
	t.Run("cgroup v2 box", func(t *testing.T) {
		if v.result["cgroup2"] != "yes" || !strings.Contains(v.result["subtree_control"], "memory") {
			t.Fatalf("not a cgroup v2 machine with controllers: %v", v.result)
		}
		if v.result["box_exit"] != "0" {
			t.Fatalf("the box's steward exited %s", v.result["box_exit"])
		}
		check := func(series string, ok func(float64) bool, what string) {
			t.Helper()
			got, have := v.box[series]
			if !have || !ok(got) {
				t.Errorf("%s = %v (sent %v), want %s", series, got, have, what)
			}
		}
		eq := func(want float64) func(float64) bool { return func(g float64) bool { return g == want } }
		check("container.memory.limit_bytes", eq(64<<20), "memory.max "+v.result["memory.max"])
		check("container.cpu.limit_cores", eq(0.2), "cpu.max "+v.result["cpu.max"])
		check("container.pids.limit", eq(40), "pids.max "+v.result["pids.max"])
		check("container.memory.oom_kills_total", eq(float64(v.kv("memory.events", "oom_kill"))), "memory.events "+v.result["memory.events"])
		check("container.memory.oom_kills_total", eq(1), "one OOM kill")
		check("container.cpu.throttled_periods_total", func(g float64) bool { return g > 0 && g <= float64(v.kv("cpu.stat", "nr_throttled")) },
			"some, at most cpu.stat's "+v.result["cpu.stat"])
		check("container.cpu.throttled_seconds_total", func(g float64) bool { return g > 0 && g <= float64(v.kv("cpu.stat", "throttled_usec"))/1e6 }, "some")
		check("container.pressure.cpu.some_seconds_total", func(g float64) bool { return g > 0 && g <= float64(v.kv("cpu.pressure", "total"))/1e6 },
			"some, at most cpu.pressure's "+v.result["cpu.pressure"])
		check("container.io.write_bytes_total", func(g float64) bool { return g >= 8<<20 && g <= float64(v.kv("io.stat", "wbytes")) }, "the 8 MiB written, io.stat "+v.result["io.stat"])
		check("container.io.read_bytes_total", func(g float64) bool { return g >= 8<<20 && g <= float64(v.kv("io.stat", "rbytes")) }, "the 8 MiB read")
		check("container.pids.current", func(g float64) bool { return g >= 1 && g <= 40 }, "within the limit")
		t.Logf("box: limit %v B, %v cores, %v pids; oom_kills %v; throttled %v periods, %v s; cpu pressure %v s; io %v B written, %v B read; pids max %v",
			v.box["container.memory.limit_bytes"], v.box["container.cpu.limit_cores"], v.box["container.pids.limit"],
			v.box["container.memory.oom_kills_total"], v.box["container.cpu.throttled_periods_total"], v.box["container.cpu.throttled_seconds_total"],
			v.box["container.pressure.cpu.some_seconds_total"], v.box["container.io.write_bytes_total"], v.box["container.io.read_bytes_total"],
			v.boxMax["container.pids.current"])
		t.Logf("kernel: memory.events %s| cpu.stat %s| io.stat %s", v.result["memory.events"], v.result["cpu.stat"], v.result["io.stat"])
		if v.boxMax["container.pids.current"] < 12 {
			t.Errorf("container.pids.current never showed the 10 extra processes: max %v", v.boxMax["container.pids.current"])
		}
		if !strings.Contains(v.boxLog, "program=hog") || !regexp.MustCompile(`program exited.*program=hog.*signal=SIGKILL`).MatchString(v.boxLog) {
			t.Errorf("the box's steward did not log the hog's kill:\n%s", v.boxLog)
		}
	})
	t.Run("render.sh on cgroup v2", func(t *testing.T) {
		if v.result["render_exit"] != "0" {
			t.Fatalf("render.sh exited %s:\n%s", v.result["render_exit"], v.renderLog)
		}
		if !strings.Contains(v.renderLog, "/sys/fs/cgroup/steward-render-") && len(v.render) == 0 {
			t.Fatalf("render.sh printed nothing:\n%s", v.renderLog)
		}
		t.Logf("render.sh printed %d container.* lines from the VM", len(v.render))
		// Its series, fed to a real carbon over the plaintext protocol, are
		// stored per version.
		carbon := carbontest.Start(t)
		conn, err := net.Dial("tcp", carbon.Addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range v.render {
			fmt.Fprintln(conn, l)
		}
		conn.Close()
		host := v.result["hostname"]
		for version, cores := range map[string]float64{"3074f46": 1, "9c1e2ab": 0.2} {
			limit := carbontest.Tagged("container.cpu.limit_cores", "app=demo", "host="+host, "version="+version)
			waitFor(t, limit+" in carbon", func() bool { _, ok := carbon.Last(limit); return ok })
			if got, _ := carbon.Last(limit); got != cores {
				t.Errorf("%s = %v, render.sh set %v", limit, got, cores)
			}
			mem := carbontest.Tagged("container.memory.limit_bytes", "app=demo", "host="+host, "version="+version)
			waitFor(t, mem+" in carbon", func() bool { _, ok := carbon.Last(mem); return ok })
			if got, _ := carbon.Last(mem); got != 128<<20 {
				t.Errorf("%s = %v, render.sh set 128 MiB", mem, got)
			}
		}
		thr := carbontest.Tagged("container.cpu.throttled_seconds_total", "app=demo", "host="+host, "version=9c1e2ab")
		waitFor(t, thr+" in carbon", func() bool { _, ok := carbon.Last(thr); return ok })
		if got, _ := carbon.Last(thr); got <= 0 {
			t.Errorf("green (0.2 core) was never throttled: %s = %v", thr, got)
		}
	})
}

// vmOutput is what the VM's steward wrote to the serial ports.
type vmOutput struct {
	events    []map[string]any   // steward's JSON log
	result    map[string]string  // RESULT lines of checks.sh
	box       map[string]float64 // the box's last printed value per series (tags dropped)
	boxMax    map[string]float64
	boxLog    string
	render    []string // render.sh's printed lines
	renderLog string
}

func parseVM(out, log string) vmOutput {
	v := vmOutput{result: map[string]string{}, box: map[string]float64{}, boxMax: map[string]float64{}}
	var boxLog, renderLog strings.Builder
	for _, line := range strings.Split(log, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil {
			v.events = append(v.events, e)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "[checks] ")
		if !ok {
			continue
		}
		kind, rest, _ := strings.Cut(rest, " ")
		switch kind {
		case "RESULT":
			k, val, _ := strings.Cut(rest, " ")
			v.result[k] = val
		case "BOX":
			f := strings.Fields(rest)
			if len(f) != 3 {
				continue
			}
			name, _, _ := strings.Cut(f[0], ";")
			if x, err := strconv.ParseFloat(f[1], 64); err == nil {
				v.box[name] = x
				v.boxMax[name] = max(v.boxMax[name], x)
			}
		case "BOXLOG":
			boxLog.WriteString(rest + "\n")
		case "RENDER":
			v.render = append(v.render, rest)
		case "RENDERLOG":
			renderLog.WriteString(rest + "\n")
		}
	}
	v.boxLog, v.renderLog = boxLog.String(), renderLog.String()
	return v
}

// kv reads "key value" pairs from a RESULT line of a kernel file (the
// numbers of memory.events, cpu.stat, io.stat's key=value and PSI's
// total=), summed when the key repeats (PSI's some and full lines: the
// first, "some", is what is wanted, so only it is kept).
func (v vmOutput) kv(result, key string) int64 {
	f := strings.Fields(strings.NewReplacer("=", " ").Replace(v.result[result]))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			n, _ := strconv.ParseInt(f[i+1], 10, 64)
			return n
		}
	}
	return -1
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.ToValidUTF8(b, nil))
}
