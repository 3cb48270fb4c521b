package fluentd

import "github.com/stewardhq/steward/collectors"

// Metrics emits what log forwarding did (steward.logs.*), so that a
// dashboard shows lines sent and dropped next to the rest.
func (s *Shipper) Metrics(emit func(collectors.Sample)) {
	st := s.Stats()
	collectors.EmitCounter(emit, "steward.logs.received_total", float64(st.Received))
	collectors.EmitCounter(emit, "steward.logs.sent_total", float64(st.Sent))
	collectors.EmitCounter(emit, "steward.logs.dropped_total", float64(st.Dropped))
	collectors.EmitCounter(emit, "steward.logs.missed_total", float64(st.Missed))
	collectors.EmitCounter(emit, "steward.logs.resent_total", float64(st.Resent))
	collectors.EmitCounter(emit, "steward.logs.reconnects_total", float64(st.Reconnects))
	collectors.EmitGauge(emit, "steward.logs.queue_bytes", float64(st.QueueBytes))
	collectors.EmitGauge(emit, "steward.logs.spool_bytes", float64(st.SpoolBytes))
	collectors.EmitGauge(emit, "steward.logs.connected", collectors.Bool(st.Connected))
}
