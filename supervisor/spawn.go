package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/stewardhq/steward/configs"
)

// Exit codes for programs that could not be started (tini's rules).
const (
	ExitNotFound      = 127
	ExitCannotExecute = 126
)

var errNotFound = errors.New("command not found")

// startError is a failed start with the exit code it counts as.
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// baseEnv is steward's environment less the variables that hold secrets.
func baseEnv(environ []string) []string {
	secrets := configs.SecretEnvNames()
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(secrets, name) || strings.HasSuffix(name, "_FILE") && slices.Contains(secrets, strings.TrimSuffix(name, "_FILE")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// programEnv is the environment of one program: inherited, less env_remove,
// plus env and identity variables.
func programEnv(base []string, p *configs.Program) []string {
	vars := make(map[string]string, len(base)+len(p.Env)+4)
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		removed := false
		for _, pattern := range p.EnvRemove {
			if ok, _ := path.Match(pattern, k); ok {
				removed = true
				break
			}
		}
		if !removed {
			set(k, v)
		}
	}
	if c := p.Cred; c != nil && c.Username != "" {
		set("HOME", c.Home)
		set("USER", c.Username)
		set("LOGNAME", c.Username)
	}
	set("STEWARD_PROGRAM", p.Name)
	for _, k := range slices.Sorted(maps.Keys(p.Env)) {
		set(k, p.Env[k])
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// lookPath finds the executable as a shell would, with the program's own
// PATH, and tells "not found" (127) from "not executable" (126).
func lookPath(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		check := file
		if !filepath.IsAbs(check) && dir != "" {
			check = filepath.Join(dir, check)
		}
		if err := executable(check); err != nil {
			return "", err
		}
		return file, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	var firstErr error = &startError{ExitNotFound, fmt.Errorf("%s: %w in PATH", file, errNotFound)}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		candidate := filepath.Join(d, file)
		err := executable(candidate)
		if err == nil {
			return candidate, nil
		}
		var se *startError
		if errors.As(err, &se) && se.code == ExitCannotExecute && firstErr.(*startError).code == ExitNotFound {
			firstErr = err
		}
	}
	return "", firstErr
}

func executable(p string) error {
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return &startError{ExitNotFound, fmt.Errorf("%s: %w", p, errNotFound)}
	case err != nil:
		return &startError{ExitCannotExecute, err}
	case fi.IsDir():
		return &startError{ExitCannotExecute, fmt.Errorf("%s: is a directory", p)}
	case fi.Mode()&0o111 == 0:
		return &startError{ExitCannotExecute, fmt.Errorf("%s: permission denied", p)}
	}
	return nil
}

// procSpec is everything needed to fork one process.
type procSpec struct {
	argv   []string
	env    []string
	dir    string
	files  []uintptr // the child's fds 0, 1, 2
	cred   *configs.Credential
	umask  *configs.Umask
	limits map[string]configs.Rlimit
	// foreground puts the child's process group in the foreground of the
	// terminal on fd 0 (tini's tcsetpgrp), for interactive programs.
	foreground bool
	// setSignals: the chain loader sets the signal dispositions, ignoring
	// those in ignore and resetting the others.
	setSignals bool
	ignore     []syscall.Signal
}

// fork starts the process in a new process group. It returns quickly: the
// child has exec'd (or failed) when it returns. Umask and rlimits are not
// something Go's fork can set in the child, so a program that needs them is
// started through steward itself as a chain loader (as s6-softlimit does),
// which applies them, drops privileges and execs the program.
func (s *Supervisor) fork(spec procSpec) (int, error) {
	bin, err := lookPath(spec.argv[0], spec.env, spec.dir)
	if err != nil {
		return 0, err
	}
	argv := spec.argv
	sys := &syscall.SysProcAttr{Setpgid: true}
	if spec.foreground {
		sys.Foreground = true
		sys.Ctty = 0
	}
	// The child's signal dispositions need setting when Go's fork would
	// not leave them as steward found them (inherit.go).
	spec.ignore, spec.setSignals = s.inheritedIgnored, len(s.inheritedIgnored) > 0 || s.sigs.jobControlIgnored
	if spec.umask != nil || len(spec.limits) > 0 || spec.setSignals {
		self, err := os.Executable()
		if err != nil {
			return 0, &startError{ExitCannotExecute, fmt.Errorf("supervisor: chain loader: own executable: %w", err)}
		}
		argv = chainArgs(spec, bin)
		bin = self
	} else if c := spec.cred; c != nil {
		sys.Credential = &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: c.Groups}
	}
	pid, err := syscall.ForkExec(bin, argv, &syscall.ProcAttr{
		Dir: spec.dir, Env: spec.env, Files: spec.files, Sys: sys,
	})
	if err != nil {
		code := ExitCannotExecute
		if errors.Is(err, syscall.ENOENT) && spec.dir == "" {
			code = ExitNotFound
		}
		return 0, &startError{code, fmt.Errorf("%s: %w", spec.argv[0], err)}
	}
	return pid, nil
}

// ChainLoadArg is argv[1] of steward when it runs as a chain loader.
const ChainLoadArg = "__chainload"

func chainArgs(spec procSpec, bin string) []string {
	args := []string{"steward", ChainLoadArg}
	if spec.umask != nil {
		args = append(args, "umask="+strconv.FormatUint(uint64(*spec.umask), 8))
	}
	for _, name := range slices.Sorted(maps.Keys(spec.limits)) {
		l := spec.limits[name]
		args = append(args, fmt.Sprintf("rlimit=%s:%d:%d", name, l.Soft, l.Hard))
	}
	if spec.setSignals {
		nums := make([]string, len(spec.ignore))
		for i, sig := range spec.ignore {
			nums[i] = strconv.Itoa(int(sig))
		}
		args = append(args, "sigign="+strings.Join(nums, ","))
	}
	if c := spec.cred; c != nil {
		groups := make([]string, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = strconv.FormatUint(uint64(g), 10)
		}
		args = append(args, fmt.Sprintf("cred=%d:%d:%s", c.UID, c.GID, strings.Join(groups, ",")))
	}
	return append(append(args, "--", bin), spec.argv...)
}

// ChainLoad runs in the child, as "steward __chainload settings... -- path
// argv...": it applies umask and rlimits while still privileged, drops to
// the program's user, sets the signal dispositions steward inherited, and
// execs the program. It returns only on failure.
func ChainLoad(args []string) error {
	i := slices.Index(args, "--")
	if i < 0 || len(args) < i+3 {
		return errors.New("supervisor: chain loader: missing -- path argv")
	}
	var cred []string
	var setSignals bool
	var ignore []syscall.Signal
	for _, a := range args[:i] {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "umask":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return fmt.Errorf("supervisor: chain loader: umask %q: %w", v, err)
			}
			syscall.Umask(int(n))
		case "rlimit":
			parts := strings.Split(v, ":")
			if len(parts) != 3 {
				return fmt.Errorf("supervisor: chain loader: rlimit %q", v)
			}
			soft, _ := strconv.ParseUint(parts[1], 10, 64)
			hard, _ := strconv.ParseUint(parts[2], 10, 64)
			// syscall.Setrlimit, not unix's: it also tells the Go runtime
			// not to restore its saved RLIMIT_NOFILE at exec.
			if err := syscall.Setrlimit(configs.RlimitResources[parts[0]], &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
				return fmt.Errorf("supervisor: chain loader: rlimit %s: %w", parts[0], err)
			}
		case "cred":
			cred = strings.Split(v, ":")
		case "sigign":
			setSignals = true
			for n := range strings.SplitSeq(v, ",") {
				if sig, err := strconv.Atoi(n); err == nil {
					ignore = append(ignore, syscall.Signal(sig))
				}
			}
		}
	}
	if len(cred) == 3 {
		// syscall's Setuid and friends change every thread (Go 1.16+).
		uid, _ := strconv.Atoi(cred[0])
		gid, _ := strconv.Atoi(cred[1])
		var groups []int
		for g := range strings.SplitSeq(cred[2], ",") {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("supervisor: chain loader: setgroups: %w", err)
		}
		if err := syscall.Setgid(gid); err != nil {
			return fmt.Errorf("supervisor: chain loader: setgid: %w", err)
		}
		if err := syscall.Setuid(uid); err != nil {
			return fmt.Errorf("supervisor: chain loader: setuid: %w", err)
		}
	}
	if setSignals {
		// Last, so that nothing of the Go runtime runs with them set.
		if err := setDispositions(ignore); err != nil {
			return fmt.Errorf("supervisor: chain loader: signal dispositions: %w", err)
		}
	}
	err := syscall.Exec(args[i+1], args[i+2:], os.Environ())
	return fmt.Errorf("supervisor: chain loader: exec %s: %w", args[i+1], err)
}

// ChainLoadExitCode is the exit code for a failed chain load.
func ChainLoadExitCode(err error) int {
	if errors.Is(err, syscall.ENOENT) {
		return ExitNotFound
	}
	return ExitCannotExecute
}
