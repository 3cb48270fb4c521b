package main

import (
	"sync"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/shippers/fluentd"
	"github.com/stewardhq/steward/shippers/sensu"
)

// metricSources are the components' own figures (log forwarding, checks,
// Sensu) that the steward collector emits each round. Components add theirs
// while starting, after the collector may already run.
type metricSources struct {
	mu  sync.Mutex
	fns []func(emit func(collectors.Sample))
}

func (m *metricSources) add(fn func(emit func(collectors.Sample))) {
	m.mu.Lock()
	m.fns = append(m.fns, fn)
	m.mu.Unlock()
}

func (m *metricSources) emit(emit func(collectors.Sample)) {
	m.mu.Lock()
	fns := m.fns
	m.mu.Unlock()
	for _, fn := range fns {
		fn(emit)
	}
}

func counter(emit func(collectors.Sample), name string, v uint64) {
	emit(collectors.Sample{Name: name, Value: float64(v), Kind: collectors.Counter})
}

func gauge(emit func(collectors.Sample), name string, v float64, tags ...collectors.Tag) {
	emit(collectors.Sample{Name: name, Value: v, Kind: collectors.Gauge, Tags: tags})
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fluentdMetrics: what log forwarding did, so a dashboard shows lines sent
// and dropped next to the rest.
func fluentdMetrics(s *fluentd.Shipper) func(func(collectors.Sample)) {
	return func(emit func(collectors.Sample)) {
		st := s.Stats()
		counter(emit, "steward.logs.received_total", st.Received)
		counter(emit, "steward.logs.sent_total", st.Sent)
		counter(emit, "steward.logs.dropped_total", st.Dropped)
		counter(emit, "steward.logs.missed_total", st.Missed)
		counter(emit, "steward.logs.resent_total", st.Resent)
		counter(emit, "steward.logs.reconnects_total", st.Reconnects)
		gauge(emit, "steward.logs.queue_bytes", float64(st.QueueBytes))
		gauge(emit, "steward.logs.spool_bytes", float64(st.SpoolBytes))
		gauge(emit, "steward.logs.connected", boolValue(st.Connected))
	}
}

// checkStatus maps a check's status to the Nagios number a graph can plot;
// a check that has not run yet is left out.
var checkStatus = map[string]float64{"ok": 0, "warning": 1, "critical": 2, "unknown": 3}

// healthMetrics: the container's health and readiness, and each check's
// latest status.
func healthMetrics(h *checks.Health) func(func(collectors.Sample)) {
	return func(emit func(collectors.Sample)) {
		rep := h.Report()
		gauge(emit, "steward.healthy", boolValue(rep.Healthy))
		gauge(emit, "steward.ready", boolValue(rep.Ready))
		for _, c := range rep.Checks {
			if v, ok := checkStatus[c.Status]; ok {
				gauge(emit, "check.status", v, collectors.Tag{Key: "check", Value: c.Name})
			}
		}
	}
}

// sensuMetrics: the Sensu agent's connection and traffic.
func sensuMetrics(a *sensu.Agent) func(func(collectors.Sample)) {
	return func(emit func(collectors.Sample)) {
		st := a.Stats()
		gauge(emit, "steward.sensu.connected", boolValue(st.Connected))
		counter(emit, "steward.sensu.messages_sent_total", st.Sent)
		counter(emit, "steward.sensu.events_dropped_total", st.Dropped)
		gauge(emit, "steward.sensu.events_queued", float64(st.Queued))
		counter(emit, "steward.sensu.reconnects_total", st.Reconnects)
		counter(emit, "steward.sensu.check_requests_total", st.Requests)
		counter(emit, "steward.sensu.check_requests_refused_total", st.Refused)
		counter(emit, "steward.sensu.events_coalesced_total", st.Coalesced)
	}
}
