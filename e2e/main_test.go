//go:build e2e

// Package e2e proves steward where users run it: as the ENTRYPOINT of real
// Docker containers (Debian's docker.io, FROM scratch images, no bridge
// network) and as PID 1 on a real cgroup v2 kernel under qemu. Run it as
// root with `bash .ci/test`, which installs what it needs; alone:
//
//	go test -tags e2e -count=1 -v ./e2e/
//
// Everything is built from the repository: a static steward, the images,
// the initramfs; Debian's kernel is downloaded once into the cache dir
// ($STEWARD_E2E_CACHE, default ~/.cache/steward-e2e). The tests start their
// own dockerd on a private socket and data root, and remove it, its
// containers and images when they end.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

var (
	repo       string // the repository's root
	work       string // this run's scratch directory
	stewardBin string // static (CGO_ENABLED=0) steward
	cacheDir   string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: run as root (docker, qemu, namespaces); see .ci/test")
		return 1
	}
	wd, _ := os.Getwd()
	repo = filepath.Dir(wd)
	var err error
	if work, err = os.MkdirTemp("", "steward-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(work)
	cacheDir = os.Getenv("STEWARD_E2E_CACHE")
	if cacheDir == "" {
		home, _ := os.UserHomeDir()
		cacheDir = filepath.Join(home, ".cache", "steward-e2e")
	}
	stewardBin = filepath.Join(work, "steward")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-X main.version=e2e", "-o", stewardBin, "./cmd/steward")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building a static steward: %v\n%s", err, out)
		return 1
	}
	// dockerd dies with this process (Pdeathsig is per OS thread: the main
	// goroutine keeps its thread for the whole run).
	runtime.LockOSThread()
	stop, err := startDockerd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer stop()
	if err := buildBaseImage(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// waitFor polls cond until it holds (testutil's hang guard, minutes
// long: nothing passes or fails on time), a little apart: each poll here
// runs the docker CLI.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, what, func() bool {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
		return false
	})
}

// --- dockerd ------------------------------------------------------------

var (
	dockerCLI  string
	dockerHost string
)

// startDockerd starts Debian's dockerd on a socket, data root and exec
// root of its own, with no bridge and no iptables: containers get
// --network none or --network host, so they talk to nothing but the
// host's loopback. stop ends it and removes its data: every container and
// image the tests made goes with it.
func startDockerd() (stop func(), err error) {
	dockerCLI = "/usr/bin/docker" // Debian's docker.io, the daemon's version
	if _, err := os.Stat(dockerCLI); err != nil {
		if dockerCLI, err = exec.LookPath("docker"); err != nil {
			return nil, fmt.Errorf("no docker CLI (Debian package docker.io): %w", err)
		}
	}
	sweepStale()
	root := filepath.Join(dockerRoots, fmt.Sprintf("docker-%d", os.Getpid()))
	run := filepath.Join(dockerRuns, fmt.Sprintf("%d", os.Getpid()))
	for _, d := range []string{root, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	sock := filepath.Join(run, "docker.sock")
	dockerHost = "unix://" + sock
	out := &testutil.LockedBuffer{}
	cmd := exec.Command("dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--host", dockerHost, "--data-root", root, "--exec-root", filepath.Join(run, "exec"),
		"--pidfile", filepath.Join(run, "docker.pid"), "--userland-proxy=false")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dockerd (Debian package docker.io): %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		// Containers first (they would outlive a daemon killed later),
		// then the daemon, then its data.
		if ids, err := docker("ps", "-aq"); err == nil && ids != "" {
			docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		removeDaemonDirs(root, run)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := docker("version"); err == nil {
			return stop, nil
		}
		select {
		case <-done:
			removeDaemonDirs(root, run)
			return nil, fmt.Errorf("dockerd exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("dockerd did not answer:\n%s", out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Where each run's daemon keeps its data and its sockets, by the test
// process's pid.
const (
	dockerRoots = "/var/lib/steward-e2e"
	dockerRuns  = "/run/steward-e2e"
)

// removeDaemonDirs removes a daemon's directories once it has stopped:
// what it left mounted there (the overlays, the netns file of
// --network host) first.
func removeDaemonDirs(dirs ...string) {
	for _, d := range dirs {
		exec.Command("umount", "-R", d).Run()
		for _, m := range mountsUnder(d) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
		os.RemoveAll(d)
	}
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append([]string{f[4]}, out...)
		}
	}
	return out
}

// sweepStale removes what the daemons of runs that were killed (a go test
// timeout, say: their daemons die with them) left behind.
func sweepStale() {
	for _, base := range []string{dockerRoots, dockerRuns} {
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "docker-"))
			if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
				continue
			}
			removeDaemonDirs(filepath.Join(base, e.Name()))
		}
	}
}

// docker runs the CLI against the tests' daemon and returns its trimmed
// stdout.
func docker(args ...string) (string, error) {
	cmd := exec.Command(dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return strings.TrimSpace(stdout.String()), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// baseImage is FROM scratch: Debian's busybox-static (its applets as
// /bin/*), the static steward, /tmp, and root and nobody in /etc/passwd.
const baseImage = "steward-e2e/base"

func buildBaseImage() error {
	ctx := filepath.Join(work, "base")
	if err := os.MkdirAll(filepath.Join(ctx, "etc"), 0o755); err != nil {
		return err
	}
	if err := copyFile("/bin/busybox", filepath.Join(ctx, "busybox"), 0o755); err != nil {
		return fmt.Errorf("busybox (Debian package busybox-static): %w", err)
	}
	if err := copyFile(stewardBin, filepath.Join(ctx, "steward"), 0o755); err != nil {
		return err
	}
	os.WriteFile(filepath.Join(ctx, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
	os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(`FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /usr/sbin /usr/local/bin && chmod 1777 /tmp
COPY etc/ /etc/
COPY steward /usr/local/bin/steward
ENTRYPOINT ["/usr/local/bin/steward"]
`), 0o644)
	if out, err := docker("build", "-q", "-t", baseImage, ctx); err != nil {
		return fmt.Errorf("building %s: %w\n%s", baseImage, err, out)
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}

func dockerCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+dockerHost)
	return cmd
}
