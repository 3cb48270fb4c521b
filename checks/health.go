package checks

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Health keeps the latest report of every check and judges the
// container's health and readiness from them.
//
//   - Healthy: no health check (a local check marked health, or a program's
//     implicit check) is CRITICAL or UNKNOWN on its latest run. During the
//     grace period after start, failing or not yet run checks make the
//     state "starting", which counts as healthy; once every health check
//     passes, the grace period no longer matters (Docker's start period).
//   - Ready: healthy and not "starting"; every health check has run;
//     every program with a readiness probe is ready in its current
//     incarnation; the main program is up; no program is being stopped.
type Health struct {
	grace   time.Duration
	started time.Time
	now     func() time.Time

	mu       sync.Mutex
	reports  map[string]Report
	expected []string // configured health checks, listed before they ran
	programs bool     // program reports have arrived
}

// Health states.
const (
	StateHealthy   = "healthy"
	StateUnhealthy = "unhealthy"
	StateStarting  = "starting"
)

// NewHealth starts the grace period now; checks are the configured ones
// (program checks are added as they report).
func NewHealth(grace time.Duration, checks []*Check) *Health {
	h := &Health{grace: grace, started: time.Now(), now: time.Now, reports: map[string]Report{}}
	for _, c := range checks {
		if c.Health {
			h.expected = append(h.expected, c.Name)
		}
	}
	return h
}

// Forget drops the report of a check that no longer exists (a program a
// reload removed), so it no longer counts toward health or readiness.
func (h *Health) Forget(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.reports, name)
}

// Record keeps r as the latest report of its check.
func (h *Health) Record(r Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports[r.Name] = r
	if r.Program != nil {
		h.programs = true
	}
}

// HealthReport is the judgement with every check, as /healthz and
// `steward health` give it.
type HealthReport struct {
	Status  string `json:"status"`
	Healthy bool   `json:"healthy"`
	Ready   bool   `json:"ready"`
	// NotReady says why the container is not ready.
	NotReady []string      `json:"not_ready,omitempty"`
	Checks   []CheckReport `json:"checks"`
}

// CheckReport is one check in a HealthReport.
type CheckReport struct {
	Name       string        `json:"name"`
	Kind       string        `json:"kind"`
	Target     string        `json:"target,omitempty"`
	Health     bool          `json:"health"`
	Status     string        `json:"status"` // ok, warning, critical, unknown, pending
	Output     string        `json:"output,omitempty"`
	Executed   *time.Time    `json:"executed,omitempty"`
	DurationMS float64       `json:"duration_ms"`
	Program    *ProgramState `json:"program,omitempty"`
}

// StatusPending is the status of a check that has not run yet.
const StatusPending = "pending"

// Report judges the current state.
func (h *Health) Report() HealthReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	inGrace := h.now().Sub(h.started) < h.grace
	failing, pending := false, false
	var notReady []string
	var out []CheckReport
	for _, name := range h.expected {
		if _, ok := h.reports[name]; !ok {
			pending = true
			out = append(out, CheckReport{Name: name, Health: true, Status: StatusPending})
			notReady = append(notReady, "check "+name+" has not run yet")
		}
	}
	for _, r := range h.reports {
		executed := r.Executed
		cr := CheckReport{Name: r.Name, Kind: r.Kind, Target: r.Target, Health: r.Health,
			Status: r.Status.String(), Output: r.Output, Executed: &executed,
			DurationMS: float64(r.Duration.Microseconds()) / 1000, Program: r.Program}
		out = append(out, cr)
		if r.Health && (r.Status == Critical || r.Status == Unknown) {
			failing = true
			notReady = append(notReady, "check "+r.Name+" is "+r.Status.String())
		}
		if p := r.Program; p != nil && p.NotReady != "" {
			notReady = append(notReady, p.NotReady)
		}
	}
	if !h.programs {
		notReady = append(notReady, "programs not started yet")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	sort.Strings(notReady)
	rep := HealthReport{Checks: out}
	switch {
	case (failing || pending) && inGrace:
		rep.Status, rep.Healthy = StateStarting, true
		notReady = append(notReady, "in the start-up grace period")
	case failing:
		rep.Status = StateUnhealthy
	default:
		rep.Status, rep.Healthy = StateHealthy, true
	}
	rep.Ready = len(notReady) == 0
	rep.NotReady = slices.Compact(notReady)
	return rep
}
