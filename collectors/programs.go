package collectors

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stewardhq/steward/internal/proc"
	"github.com/stewardhq/steward/supervisor"
)

// ProgramsConfig says where the programs collector looks.
type ProgramsConfig struct {
	// Root is the filesystem root /proc is read under.
	Root string
	// Status returns the supervisor's view of its programs
	// (supervisor.Supervisor.Status); nil while it is not running.
	Status func(ctx context.Context) []supervisor.ProgramStatus
	// Now is the clock for uptimes; time.Now when nil.
	Now func() time.Time
}

// Programs reports each supervised program: what the supervisor knows
// (state, readiness, restarts, last exit code, uptime) and what its
// process group uses, summed over every process whose process group is
// the program's (each program leads its own group, so children and
// grandchildren count too): CPU seconds (with those of children they have
// reaped), resident memory, open file descriptors, threads.
type Programs struct {
	proc   string // root/proc
	r      reader
	pids   []int
	page   float64
	status func(ctx context.Context) []supervisor.ProgramStatus
	now    func() time.Time
	log    *slog.Logger

	tags   map[string]*programTags
	groups map[int]*groupUsage
}

type programTags struct {
	base   []Tag
	states [supervisor.StateStopped + 1][]Tag
}

// userHZ is the unit of CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture).
const userHZ = 100

// groupUsage is what the processes of one process group use.
type groupUsage struct {
	procs, threads int
	cpu            float64 // seconds
	rss            float64 // bytes
	fds            int
}

// NewPrograms returns a programs collector.
func NewPrograms(cfg ProgramsConfig, log *slog.Logger) (*Programs, error) {
	proc := filepath.Join(cfg.Root, "proc")
	if _, err := os.Stat(proc); err != nil {
		return nil, fmt.Errorf("programs: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Programs{proc: proc, page: float64(os.Getpagesize()), status: cfg.Status, now: now, log: log,
		tags: map[string]*programTags{}, groups: map[int]*groupUsage{}}, nil
}

// Name implements Collector.
func (p *Programs) Name() string { return "programs" }

func (p *Programs) tagsFor(name string) *programTags {
	t, ok := p.tags[name]
	if !ok {
		t = &programTags{base: []Tag{{"program", name}}}
		for st := range t.states {
			t.states[st] = []Tag{{"program", name}, {"state", supervisor.State(st).String()}}
		}
		p.tags[name] = t
	}
	return t
}

// Collect implements Collector.
func (p *Programs) Collect(ctx context.Context, emit func(Sample)) error {
	programs := p.status(ctx)
	if programs == nil {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("programs: supervisor status: %w", err)
		}
		return nil // the supervisor has not started or has ended
	}
	clear(p.groups)
	for _, ps := range programs {
		if ps.PID != 0 {
			p.groups[ps.PID] = &groupUsage{}
		}
	}
	err := p.scan()
	now := p.now()
	for _, ps := range programs {
		t := p.tagsFor(ps.Name)
		for st, tags := range t.states {
			v := 0.0
			if supervisor.State(st) == ps.State {
				v = 1
			}
			gauge(emit, "program.state", v, tags)
		}
		ready := 0.0
		if ps.Ready {
			ready = 1
		}
		gauge(emit, "program.ready", ready, t.base)
		counter(emit, "program.restarts_total", float64(ps.Restarts), t.base)
		if ps.LastExitCode != -1 {
			gauge(emit, "program.last_exit_code", float64(ps.LastExitCode), t.base)
		}
		if ps.PID == 0 {
			continue // no process: its usage is absent, not zero
		}
		if !ps.StartedAt.IsZero() {
			gauge(emit, "program.uptime_seconds", seconds(now.Sub(ps.StartedAt)), t.base)
		}
		if g := p.groups[ps.PID]; g.procs > 0 {
			gauge(emit, "program.processes", float64(g.procs), t.base)
			gauge(emit, "program.threads", float64(g.threads), t.base)
			gauge(emit, "program.memory_rss_bytes", g.rss, t.base)
			gauge(emit, "program.open_fds", float64(g.fds), t.base)
			counter(emit, "program.cpu_seconds_total", g.cpu, t.base)
		}
	}
	return err
}

// scan adds up every process of the wanted groups.
func (p *Programs) scan() error {
	if len(p.groups) == 0 {
		return nil
	}
	pids, err := p.r.pids(p.proc, p.pids)
	p.pids = pids
	if err != nil {
		return fmt.Errorf("programs: %w", err)
	}
	var path []byte
	for _, pid := range pids {
		path = strconv.AppendInt(append(append(path[:0], p.proc...), '/'), int64(pid), 10)
		dir := string(path)
		b, err := p.r.read(dir + "/stat")
		if err != nil {
			continue // exited while we looked
		}
		st, err := proc.ParseStat(b)
		if err != nil {
			continue
		}
		g, ok := p.groups[st.Pgrp]
		if !ok {
			continue
		}
		g.procs++
		g.threads += st.Threads
		// Children a process has reaped count in its cutime/cstime, so
		// the CPU of short-lived helpers (a shell's commands) stays in.
		g.cpu += float64(st.Utime+st.Stime+st.Cutime+st.Cstime) / userHZ
		g.rss += float64(st.RSSPages) * p.page
		if n, err := p.r.countEntries(dir + "/fd"); err == nil {
			g.fds += n
		}
	}
	return nil
}
