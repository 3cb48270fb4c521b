package sensu

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
)

func report(name string, s checks.Status) checks.Report {
	return checks.Report{Name: name, Kind: checks.KindProgram, Target: "worker", Handlers: []string{"incident"},
		Result: checks.Result{Status: s, Executed: time.Now(), Output: fmt.Sprintf("status %d", s)}}
}

// collapse drops consecutive repeats: the transitions of a history.
func collapse(h []int) []int { return slices.Compact(slices.Clone(h)) }

// incidents lists, in order, the statuses an is_incident handler of entity's
// check received.
func incidents(p *sensupeer.Peer, entity, check string) []int {
	var out []int
	for _, r := range p.HandlerRuns() {
		if r.Entity == entity && r.Check == check && r.Incident() {
			out = append(out, r.Status)
		}
	}
	return out
}

// TestCrashRestartHistory: a program that crashes and is restarted at once
// yields CRITICAL then OK milliseconds apart, as 20 containers against one
// backend that stores asynchronously. Each history must end in [2, 0] and
// the incident handler must get the incident and its resolution.
func TestCrashRestartHistory(t *testing.T) {
	p := newPeer(t)
	const n = 20
	agents := make([]*Agent, n)
	for i := range agents {
		cfg := testConfig(p)
		cfg.EntityName = fmt.Sprintf("crash-%02d", i)
		if i%2 == 1 {
			// Without an API key to see results stored: paced by
			// event_spacing.
			cfg.APIURL, cfg.APIKey = "", ""
		}
		agents[i], _ = startAgent(t, cfg)
	}
	for i := range agents {
		waitFor(t, p, "registration", func() bool { _, ok := p.Entity("default", fmt.Sprintf("crash-%02d", i)); return ok })
	}
	for _, a := range agents {
		a.Publish(report("program-worker", checks.OK))
	}
	for i := range agents {
		name := fmt.Sprintf("crash-%02d", i)
		waitFor(t, p, "first result stored", func() bool { return len(p.History("default", name, "program-worker")) == 1 })
	}
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Go(func() {
			a.Publish(report("program-worker", checks.Critical))
			a.Publish(report("program-worker", checks.OK))
		})
	}
	wg.Wait()
	lost := 0
	for i := range agents {
		name := fmt.Sprintf("crash-%02d", i)
		// Three results sent: the history has three entries once all are
		// stored, or fewer forever when one overwrote another.
		waitFor(t, p, "results stored", func() bool { return p.Settled() && agents[i].Stats().Queued == 0 && agents[i].idle() })
		h := p.History("default", name, "program-worker")
		inc := incidents(p, name, "program-worker")
		if !slices.Equal(h, []int{0, 2, 0}) || !slices.Equal(inc, []int{2, 0}) {
			lost++
			t.Errorf("%s: history %v, incident handler got %v; want [0 2 0] and [2 0]", name, h, inc)
		}
	}
	t.Logf("%d of %d containers lost a state change", lost, n)
}

// TestOutageBacklogReplayed: results queued while the backend is down all
// reach the history once it is back, every transition in order.
func TestOutageBacklogReplayed(t *testing.T) {
	p := newPeer(t)
	a, _ := startAgent(t, testConfig(p))
	waitFor(t, p, "registration", registeredIn(p, "web-7f9c"))
	p.SetDown(true)
	waitFor(t, p, "disconnection", func() bool { return !a.Stats().Connected })
	sent := []checks.Status{0, 2, 2, 0, 1, 1, 0, 2, 0, 0, 3, 0, 2, 1, 0, 0}
	var want []int
	for _, s := range sent {
		a.Publish(report("app-api", s))
		want = append(want, int(s))
	}
	p.SetDown(false)
	waitFor(t, p, "the backlog stored", func() bool {
		return a.Stats().Queued == 0 && a.idle() && p.Settled()
	})
	h := p.History("default", "web-7f9c", "app-api")
	if !slices.Equal(collapse(h), collapse(want)) {
		t.Errorf("history %v, want the transitions of %v", h, want)
	}
	inc := incidents(p, "web-7f9c", "app-api")
	if got, wantInc := collapse(inc), collapse(incidentsOf(want)); !slices.Equal(got, wantInc) {
		t.Errorf("incident handler got %v, want %v", got, wantInc)
	}
}

// incidentsOf is what an is_incident handler sees of a history.
func incidentsOf(h []int) []int {
	var out []int
	for i, s := range h {
		if s != 0 || (i > 0 && h[i-1] != 0) {
			out = append(out, s)
		}
	}
	return out
}

func registeredIn(p *sensupeer.Peer, entity string) func() bool {
	return func() bool { _, ok := p.Entity("default", entity); return ok }
}

// TestNoOrphanEventsAfterStops: 100 graceful stops with a deregistration
// handler against a backend that stores events asynchronously leave no
// event on a deleted entity.
func TestNoOrphanEventsAfterStops(t *testing.T) {
	p := newPeer(t)
	stops := 100
	if testing.Short() {
		stops = 20
	}
	var took []time.Duration
	for i := range stops {
		cfg := testConfig(p)
		cfg.EntityName = fmt.Sprintf("stop-%03d", i)
		a, err := New(cfg, Identity{App: "shop", Version: "1", Hostname: "h"}, executor(t), discardLog())
		if err != nil {
			t.Fatal(err)
		}
		a.Start()
		waitFor(t, p, "registration", registeredIn(p, cfg.EntityName))
		a.Publish(report("app-api", checks.OK))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		began := time.Now()
		err = a.Close(ctx)
		took = append(took, time.Since(began))
		if err != nil {
			t.Errorf("stop %d: %v", i, err)
		}
		cancel()
	}
	slices.Sort(took)
	// A figure, not a verdict: the stop now waits for the backend to store
	// the last events (the peer's store delay is below 40 ms).
	t.Logf("Close took median %v, max %v", took[len(took)/2], took[len(took)-1])
	waitFor(t, p, "every event stored", p.Settled)
	if o := p.Orphans(); len(o) > 0 {
		t.Errorf("%d of %d stops left events on deleted entities: %v", len(o), stops, o[:min(len(o), 6)])
	}
	if d := p.Deletions(); len(d) != stops {
		t.Errorf("%d entities deleted, want %d", len(d), stops)
	}
	handled := 0
	for _, r := range p.HandlerRuns() {
		if r.Check == deregistrationCheck {
			handled++
		}
	}
	if handled != stops {
		t.Errorf("the deregistration handler ran %d times, want %d", handled, stops)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
