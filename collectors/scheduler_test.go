package collectors

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// fakeCollector emits one gauge and returns err.
type fakeCollector struct {
	name string
	mu   sync.Mutex
	err  error
}

func (f *fakeCollector) Name() string { return f.name }

func (f *fakeCollector) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeCollector) Collect(_ context.Context, emit func(Sample)) error {
	gauge(emit, "fake."+f.name, 1, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func TestSchedulerRounds(t *testing.T) {
	good, bad := &fakeCollector{name: "good"}, &fakeCollector{name: "bad", err: errors.New("boom")}
	var logs testutil.LockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	const interval = 50 * time.Millisecond
	rounds := make(chan []Sample, 16)
	var sched *Scheduler
	self, _ := NewSelf(SelfConfig{Root: "/", Sources: []func(func(Sample)){func(emit func(Sample)) { sched.Stats(emit) }}}, log)
	sched = NewScheduler(interval, []Collector{good, bad, self}, func(s []Sample) {
		rounds <- append([]Sample(nil), s...)
	}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sched.Run(ctx); close(done) }()
	var got [][]Sample
	for len(got) < 4 {
		got = append(got, <-rounds)
		if len(got) == 3 {
			bad.setErr(nil)
		}
	}
	cancel()
	<-done
	for i, round := range got {
		tick := round[0].Time
		if tick.UnixNano()%int64(interval) != 0 {
			t.Errorf("round %d at %v: not aligned to %v", i, tick, interval)
		}
		if i > 0 && !tick.After(got[i-1][0].Time) {
			t.Errorf("round %d at %v: not after the previous round", i, tick)
		}
		s := samples{}
		for _, smp := range round {
			if !smp.Time.Equal(tick) {
				t.Errorf("round %d: %s stamped %v, not the round's tick", i, smp.Name, smp.Time)
			}
			s[series(smp)] = smp
		}
		wantBad := 0.0
		if i == 3 {
			wantBad = 1
		}
		s.want(t, Gauge, map[string]float64{"fake.good": 1, "fake.bad": 1,
			"steward.collector.success;collector=good": 1, "steward.collector.success;collector=bad": wantBad})
		if _, ok := s["steward.collector.duration_seconds;collector=good"]; !ok {
			t.Errorf("round %d: no duration for good", i)
		}
		if s["steward.cpu_seconds_total"].Kind != Counter || s["steward.memory_rss_bytes"].Value <= 0 || s["steward.goroutines"].Value < 1 {
			t.Errorf("round %d: steward's own figures missing: %v", i, s.names())
		}
	}
	// Three failing rounds and a recovery: one line each, not one per round.
	if n := logs.Count("collector failing"); n != 1 {
		t.Errorf("%d failure lines, want 1:\n%s", n, logs.String())
	}
	if n := logs.Count("collector recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}
