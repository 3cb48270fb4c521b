package sensu

import (
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
)

// BenchmarkEventPacing measures, against the peer storing events as the
// backend does (a random store delay below the latency), how often a crash
// and its recovery sent back to back lose a state change, and what pacing
// costs: each op is one CRITICAL then OK, waited until both are stored (or
// lost). Run:
//
//	go test -run XXX -bench EventPacing -benchtime 20x ./shippers/sensu/
func BenchmarkEventPacing(b *testing.B) {
	for _, latency := range []time.Duration{5 * time.Millisecond, 40 * time.Millisecond, 200 * time.Millisecond} {
		for _, mode := range []struct {
			name    string
			spacing time.Duration
			confirm bool
		}{{"unpaced", 0, false}, {"spacing-100ms", 100 * time.Millisecond, false},
			{"spacing-1s", time.Second, false}, {"confirmed", time.Second, true}} {
			b.Run(fmt.Sprintf("latency-%s/%s", latency, mode.name), func(b *testing.B) {
				p := newPeer(b)
				p.StoreLatency = latency
				cfg := testConfig(p)
				cfg.EventSpacing = configs.Duration(mode.spacing)
				if !mode.confirm {
					cfg.APIURL, cfg.APIKey = "", ""
				}
				a, _ := startAgent(b, cfg)
				waitFor(b, p, "registration", registeredIn(p, "web-7f9c"))
				lost := 0
				b.ResetTimer()
				for range b.N {
					a.Publish(report("c", checks.Critical))
					a.Publish(report("c", checks.OK))
					for !(a.idle() && p.Settled()) {
						time.Sleep(time.Millisecond)
					}
					h := p.History("default", "web-7f9c", "c")
					if len(h) < 2 || h[len(h)-2] != 2 || h[len(h)-1] != 0 {
						lost++
						b.Logf("op lost a change: history %v", h)
					}
				}
				b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
			})
		}
	}
}
