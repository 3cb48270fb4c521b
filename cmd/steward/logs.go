package main

import (
	"context"

	"github.com/stewardhq/steward/shippers/fluentd"
)

// startLogs forwards every program's lines to Fluentd when [fluentd] (or
// STEWARD_FLUENTD_ADDR) names a server.
func startLogs(ctx context.Context, w *wiring) (component, error) {
	if w.cfg.Fluentd == nil {
		return nil, nil
	}
	s, err := fluentd.New(w.cfg, w.log)
	if err != nil {
		return nil, err
	}
	s.Start(w.sup.Logs())
	w.sources.add(fluentdMetrics(s))
	return s, nil
}
