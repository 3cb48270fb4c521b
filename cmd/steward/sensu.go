package main

import (
	"context"
	"errors"

	"github.com/stewardhq/steward/internal/buildinfo"
	"github.com/stewardhq/steward/shippers/sensu"
)

// sensuComponent ships check reports to Sensu Go and deregisters the
// entity when closed.
type sensuComponent struct {
	agent *sensu.Agent
	stop  func()
	done  chan struct{}
}

// startSensu subscribes to the check reports before any program starts,
// so the agent, which startSensuAgent starts after the first exec, misses
// none: they wait in the subscription (queue_size reports).
func startSensu(ctx context.Context, w *wiring) (component, error) {
	cfg := &w.cfg.Sensu
	if !cfg.Enabled() {
		return nil, nil
	}
	w.sensuReports = w.results.Subscribe("sensu", cfg.QueueSize)
	return sensuSubscription{w}, nil
}

// sensuSubscription ends the subscription when the agent never started
// (steward stopped first); unsubscribing twice is harmless.
type sensuSubscription struct{ w *wiring }

func (s sensuSubscription) Close(context.Context) error {
	s.w.results.Unsubscribe(s.w.sensuReports)
	return nil
}

func startSensuAgent(ctx context.Context, w *wiring) (component, error) {
	sub := w.sensuReports
	if sub == nil {
		return nil, nil
	}
	cfg := &w.cfg.Sensu
	agent, err := sensu.New(cfg, sensu.Identity{App: w.cfg.Steward.App, Version: w.cfg.Steward.Version,
		Hostname: w.cfg.Steward.Host, StewardVersion: buildinfo.Read(version).Version}, w.sup, w.log)
	if err != nil {
		w.results.Unsubscribe(sub)
		return nil, err
	}
	c := &sensuComponent{agent: agent, done: make(chan struct{})}
	c.stop = func() { w.results.Unsubscribe(sub) }
	agent.Start()
	w.sources.add(agent.Metrics)
	go func() {
		defer close(c.done)
		for r := range sub.C {
			agent.Publish(*r)
		}
	}()
	return c, nil
}

func (c *sensuComponent) Close(ctx context.Context) error {
	// Reports published until now are handed to the agent, which sends
	// them before it deregisters.
	c.stop()
	select {
	case <-c.done:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), c.agent.Close(ctx))
	}
	return c.agent.Close(ctx)
}
