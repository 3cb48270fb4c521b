package sensu

import "github.com/stewardhq/steward/collectors"

// Metrics emits the agent's connection and traffic (steward.sensu.*).
func (a *Agent) Metrics(emit func(collectors.Sample)) {
	st := a.Stats()
	collectors.EmitGauge(emit, "steward.sensu.connected", collectors.Bool(st.Connected))
	collectors.EmitCounter(emit, "steward.sensu.messages_sent_total", float64(st.Sent))
	collectors.EmitCounter(emit, "steward.sensu.events_dropped_total", float64(st.Dropped))
	collectors.EmitGauge(emit, "steward.sensu.events_queued", float64(st.Queued))
	collectors.EmitCounter(emit, "steward.sensu.reconnects_total", float64(st.Reconnects))
	collectors.EmitCounter(emit, "steward.sensu.check_requests_total", float64(st.Requests))
	collectors.EmitCounter(emit, "steward.sensu.check_requests_refused_total", float64(st.Refused))
	collectors.EmitCounter(emit, "steward.sensu.events_coalesced_total", float64(st.Coalesced))
}
