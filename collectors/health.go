package collectors

import "github.com/stewardhq/steward/checks"

// checkStatus maps a check's status to the Nagios number a graph can plot;
// a check that has not run yet is left out.
var checkStatus = map[string]float64{"ok": 0, "warning": 1, "critical": 2, "unknown": 3}

// HealthMetrics emits the container's health and readiness, and each
// check's latest status (check.status{check}), from h's current report: a
// check h has forgotten (a removed program's) is gone from the next round.
func HealthMetrics(h *checks.Health) func(emit func(Sample)) {
	return func(emit func(Sample)) {
		rep := h.Report()
		EmitGauge(emit, "steward.healthy", Bool(rep.Healthy))
		EmitGauge(emit, "steward.ready", Bool(rep.Ready))
		for _, c := range rep.Checks {
			if v, ok := checkStatus[c.Status]; ok {
				EmitGauge(emit, "check.status", v, Tag{Key: "check", Value: c.Name})
			}
		}
	}
}
