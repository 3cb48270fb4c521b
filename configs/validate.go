package configs

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/user"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

func deriveSteward(cfg *Config) {
	s := &cfg.Steward
	if s.Host == "" {
		s.Host, _ = os.Hostname()
	}
	if s.App == "" {
		s.App = "app"
		if mains := cfg.mains(); len(mains) == 1 {
			s.App = mains[0]
		}
	}
	if s.Version == "" {
		s.Version = "unknown"
	}
}

// mains names the programs marked main, in the config's order.
func (c *Config) mains() []string {
	var mains []string
	for _, name := range c.Order {
		if c.Programs[name].Main {
			mains = append(mains, name)
		}
	}
	return mains
}

func validateSteward(d *decoder, cfg *Config) {
	s := &cfg.Steward
	d.oneOf("steward.log_level", s.LogLevel, "debug", "info", "warn", "error")
	d.oneOf("steward.log_format", s.LogFormat, "text", "json")
	d.oneOf("steward.output_prefix", s.OutputPrefix, "auto", "always", "never")
	if s.MaxLineBytes < 64 || s.MaxLineBytes > 16<<20 {
		d.add("", "steward.max_line_bytes", "%d is outside 64 to 16777216", s.MaxLineBytes)
	}
	if s.LogBufferLines < 1 {
		d.add("", "steward.log_buffer_lines", "must be at least 1")
	}
	for _, code := range s.SuccessExitCodes {
		if code < 0 || code > 255 {
			d.add("", "steward.success_exit_codes", "exit code %d is outside 0-255", code)
		}
	}
}

// derivePrograms fills what a program's kind and role decide: the restart
// policy and fatal action of a main program or a oneshot, and the condition
// a dependency waits for.
func derivePrograms(cfg *Config) {
	for _, name := range cfg.Order {
		p := cfg.Programs[name]
		if p.Kind == "" {
			p.Kind = KindService
		}
		if p.Restart == "" {
			p.Restart = RestartAlways
			if p.Main || p.Kind == KindOneshot {
				p.Restart = RestartNever
			}
		}
		if p.OnFatal == "" {
			p.OnFatal = OnFatalContinue
			if p.Main || p.Critical || p.Kind == KindOneshot {
				p.OnFatal = OnFatalStop
			}
		}
	}
	for _, name := range cfg.Order {
		p := cfg.Programs[name]
		for i, dep := range p.DependsOn {
			other, ok := cfg.Programs[dep.Name]
			if !ok || dep.Condition != "" {
				continue
			}
			switch {
			case other.Kind == KindOneshot:
				p.DependsOn[i].Condition = CondCompleted
			case other.Ready != nil:
				p.DependsOn[i].Condition = CondReady
			default:
				p.DependsOn[i].Condition = CondStarted
			}
		}
	}
}

func validatePrograms(d *decoder, cfg *Config) {
	if len(cfg.Programs) == 0 {
		d.add("", "programs", "no programs: add a [programs.NAME] table, or give a command after --")
	}
	for _, name := range cfg.Order {
		d.validateProgram(cfg, cfg.Programs[name])
	}
	if mains := cfg.mains(); len(mains) > 1 {
		for _, name := range mains {
			d.add("", "programs."+name+".main", "only one program can be main (%s)", strings.Join(mains, ", "))
		}
	}
	d.findCycles(cfg)
}

func (d *decoder) validateProgram(cfg *Config, p *Program) {
	key := join("programs", p.Name)
	if !validName(p.Name) {
		d.add("", key, "program names use letters, digits, '-' and '_'")
	}
	if len(p.Command) == 0 || p.Command[0] == "" {
		if p.Main {
			d.add("", key+".command", "is empty: set it, or give the command after -- on the command line")
		} else {
			d.add("", key+".command", "is empty")
		}
	}
	d.oneOf(key+".kind", p.Kind, KindService, KindOneshot)
	d.oneOf(key+".restart", p.Restart, RestartAlways, RestartOnFailure, RestartNever)
	d.oneOf(key+".on_fatal", p.OnFatal, OnFatalStop, OnFatalContinue)
	if p.Stdio != "" {
		d.oneOf(key+".stdio", p.Stdio, StdioCapture, StdioInherit)
	}
	if p.StartRetries < 0 {
		d.add("", key+".start_retries", "must not be negative")
	}
	if p.BackoffMax < p.BackoffInitial {
		d.add("", key+".backoff_max", "%s is below backoff_initial %s", p.BackoffMax.D(), p.BackoffInitial.D())
	}
	if p.StopSignal == 0 {
		d.add("", key+".stop_signal", "must name a signal")
	}
	d.validateRewrites(key, p)
	for name := range p.Rlimits {
		if _, ok := RlimitResources[name]; !ok {
			d.add("", join(key+".rlimits", name), "unknown resource (known: %s)", strings.Join(slices.Sorted(maps.Keys(RlimitResources)), ", "))
		}
	}
	for name := range p.Env {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			d.add("", key+".env", "bad variable name %q", name)
		}
	}
	for _, pattern := range p.EnvRemove {
		if _, err := path.Match(pattern, ""); err != nil {
			d.add("", key+".env_remove", "bad pattern %q: %v", pattern, err)
		}
	}
	if p.Ready != nil {
		d.validateProbe(key+".ready", p.Ready)
	}
	for i, dep := range p.DependsOn {
		dkey := fmt.Sprintf("%s.depends_on[%d]", key, i)
		other, ok := cfg.Programs[dep.Name]
		switch {
		case !ok:
			d.add("", key+".depends_on", "unknown program %q%s", dep.Name, didYouMean(dep.Name, programIndex(cfg)))
			continue
		case dep.Name == p.Name:
			d.add("", key+".depends_on", "a program cannot depend on itself")
			continue
		}
		if dep.Condition == CondCompleted && other.Kind != KindOneshot {
			d.add("", key+".depends_on", "%q is not a oneshot and never completes (%s)", dep.Name, dkey)
		}
	}
}

func programIndex(cfg *Config) map[string]int {
	m := make(map[string]int, len(cfg.Programs))
	for name := range cfg.Programs {
		m[name] = 0
	}
	return m
}

func validName(name string) bool {
	return name != "" && programName(name) == name
}

func (d *decoder) validateProbe(key string, pr *Probe) {
	set := 0
	if pr.TCP != "" {
		set++
		if _, _, err := net.SplitHostPort(pr.TCP); err != nil {
			d.add("", key+".tcp", "%q is not host:port", pr.TCP)
		}
	}
	if pr.HTTP != "" {
		set++
		if u, err := url.Parse(pr.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.add("", key+".http", "%q is not an http:// or https:// URL", RedactURL(pr.HTTP))
		}
	}
	if len(pr.Command) > 0 {
		set++
	}
	if pr.File != "" {
		set++
	}
	if set != 1 {
		d.add("", key, "set exactly one of tcp, http, command and file")
	}
	if pr.Interval <= 0 {
		d.add("", key+".interval", "must be above zero")
	}
	if pr.Timeout <= 0 {
		d.add("", key+".timeout", "must be above zero")
	}
	d.validateHTTPExtras(key, pr)
}

// resolveUsers looks every program's user, group and groups up in /etc/passwd
// and /etc/group, so an unknown name fails before anything starts. With
// Options.DeferUsers an unknown name is a warning instead: the config is
// checked on a host that is not the image it runs in.
func resolveUsers(d *decoder, cfg *Config) {
	for _, name := range cfg.Order {
		d.resolveUser(join("programs", name), cfg.Programs[name])
	}
}

// unknownName reports a user or group this host does not know.
func (d *decoder) unknownName(key, what, name string) {
	if d.undecoded[key] {
		// An element that failed to decode left a zero value here; its
		// problem is reported already, a warning about "" would be noise.
		return
	}
	if !d.deferUsers {
		d.add("", key, "unknown %s %q", what, name)
		return
	}
	p := d.problem("", key, "unknown %s %q on this host (looked up again when steward starts)", what, name)
	d.warnings = append(d.warnings, p)
}

func (d *decoder) resolveUser(key string, p *Program) {
	if p.User == "" && p.Group == "" && len(p.Groups) == 0 {
		return
	}
	cred := &Credential{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if p.User != "" {
		u, err := lookupUser(p.User)
		switch {
		case err == nil:
			uid, _ := strconv.ParseUint(u.Uid, 10, 32)
			gid, _ := strconv.ParseUint(u.Gid, 10, 32)
			cred.UID, cred.GID, cred.Home, cred.Username = uint32(uid), uint32(gid), u.HomeDir, u.Username
			if ids, err := u.GroupIds(); err == nil {
				for _, id := range ids {
					if n, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(n) != cred.GID {
						cred.Groups = append(cred.Groups, uint32(n))
					}
				}
			}
		case isNumber(p.User):
			// A bare uid without a passwd entry, as docker run --user allows.
			uid, _ := strconv.ParseUint(p.User, 10, 32)
			cred.UID, cred.GID, cred.Home, cred.Username = uint32(uid), 0, "/", p.User
		default:
			d.unknownName(key+".user", "user", p.User)
		}
	}
	if p.Group != "" {
		gid, err := lookupGroup(p.Group)
		if err != nil {
			d.unknownName(key+".group", "group", p.Group)
		}
		cred.GID = gid
	}
	for _, g := range p.Groups {
		gid, err := lookupGroup(g)
		if err != nil {
			d.unknownName(key+".groups", "group", g)
			continue
		}
		if !slices.Contains(cred.Groups, gid) {
			cred.Groups = append(cred.Groups, gid)
		}
	}
	p.Cred = cred
}

func lookupUser(name string) (*user.User, error) {
	if isNumber(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (uint32, error) {
	if isNumber(name) {
		n, err := strconv.ParseUint(name, 10, 32)
		return uint32(n), err
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(n), err
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

func (d *decoder) oneOf(key, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		d.add("", key, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

// findCycles reports every dependency cycle once, naming its path.
func (d *decoder) findCycles(cfg *Config) {
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		for _, dep := range cfg.Programs[name].DependsOn {
			if _, ok := cfg.Programs[dep.Name]; !ok {
				continue
			}
			switch state[dep.Name] {
			case unvisited:
				visit(dep.Name)
			case active:
				i := slices.Index(stack, dep.Name)
				cycle := append(slices.Clone(stack[i:]), dep.Name)
				d.add("", join("programs", dep.Name)+".depends_on", "dependency cycle: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range cfg.Order {
		if state[name] == unvisited {
			visit(name)
		}
	}
}

// validateRewrites refuses rewrites that could never happen: of a signal
// steward never receives or never forwards.
func (d *decoder) validateRewrites(key string, p *Program) {
	for _, from := range slices.Sorted(maps.Keys(p.Signals)) {
		k := join(key+".signals", from)
		sig, err := ParseSignal(from)
		if err != nil {
			d.add("", k, "%v", err)
			continue
		}
		// Any target is fine: steward sends it with kill(2). A target
		// that does not exist failed to decode already.
		if err := NotForwarded(sig); err != nil {
			d.add("", k, "cannot rewrite: %v", err)
		}
	}
}

// SignalRewrites returns the program's rewrite table keyed by signal.
func (p *Program) SignalRewrites() map[syscall.Signal]SignalRewrite {
	out := make(map[syscall.Signal]SignalRewrite, len(p.Signals))
	for from, to := range p.Signals {
		if sig, err := ParseSignal(from); err == nil {
			out[sig] = to
		}
	}
	return out
}
