// Command demoapp is the app of configs/dashboards/render.sh: a pretend
// web service that follows the README's conventions for app metrics
// (App metrics → Conventions). It "serves" about 50 requests a second,
// each some milliseconds of CPU work, so a tighter CPU quota shows as
// higher latency; a share of them fail. It reports them both ways steward
// takes in:
//
//   - StatsD to DEMO_STATSD (UDP): http.requests and http.errors counters,
//     http.request_duration timings (ms), tagged route and code;
//   - a Prometheus endpoint on DEMO_LISTEN at /metrics:
//     http_requests_total{route,code} and the summary
//     http_request_duration_seconds{route,quantile}.
//
// DEMO_ERRORS is the share of failing requests (default 0.02).
package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	statsd := env("DEMO_STATSD", "127.0.0.1:8125")
	listen := env("DEMO_LISTEN", "127.0.0.1:9102")
	errRate, _ := strconv.ParseFloat(env("DEMO_ERRORS", "0.02"), 64)
	conn, err := net.Dial("udp", statsd)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demoapp:", err)
		os.Exit(1)
	}
	m := &metrics{counts: map[[2]string]int{}}
	http.HandleFunc("/metrics", m.serve)
	go func() {
		if err := http.ListenAndServe(listen, nil); err != nil {
			fmt.Fprintln(os.Stderr, "demoapp:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("demoapp: StatsD to %s, /metrics on %s, %.0f%% errors\n", statsd, listen, 100*errRate)
	routes := []string{"/api/orders", "/api/users"}
	var batch []byte
	flush := time.NewTicker(100 * time.Millisecond)
	tick := time.NewTicker(20 * time.Millisecond) // 50 requests a second
	for {
		select {
		case <-flush.C:
			if len(batch) > 0 {
				conn.Write(batch)
				batch = batch[:0]
			}
		case <-tick.C:
			route := routes[rand.IntN(len(routes))]
			start := time.Now()
			work(time.Duration(2+rand.IntN(3)) * time.Millisecond)
			d := time.Since(start)
			code := "200"
			if rand.Float64() < errRate {
				code = "500"
			}
			batch = fmt.Appendf(batch, "http.requests:1|c|#route:%s,code:%s\n", route, code)
			batch = fmt.Appendf(batch, "http.request_duration:%.3f|ms|#route:%s\n", float64(d)/1e6, route)
			if code != "200" {
				batch = fmt.Appendf(batch, "http.errors:1|c|#route:%s,code:%s\n", route, code)
			}
			m.observe(route, code, d)
		}
	}
}

// work spins for about d of CPU time: under a CPU quota it takes longer.
func work(d time.Duration) {
	var x uint64
	for start := time.Now(); time.Since(start) < d; {
		for i := range 1000 {
			x += uint64(i) * x
		}
	}
	_ = x
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// metrics keeps what /metrics shows: counts per route and code, and the
// last 500 durations per route for the summary's quantiles.
type metrics struct {
	mu     sync.Mutex
	counts map[[2]string]int
	recent map[string][]float64
	sum    map[string]float64
	n      map[string]int
}

func (m *metrics) observe(route, code string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recent == nil {
		m.recent, m.sum, m.n = map[string][]float64{}, map[string]float64{}, map[string]int{}
	}
	m.counts[[2]string{route, code}]++
	r := append(m.recent[route], d.Seconds())
	if len(r) > 500 {
		r = r[1:]
	}
	m.recent[route] = r
	m.sum[route] += d.Seconds()
	m.n[route]++
}

func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# TYPE http_requests_total counter\n")
	for k, n := range m.counts {
		fmt.Fprintf(&b, "http_requests_total{route=%q,code=%q} %d\n", k[0], k[1], n)
	}
	b.WriteString("# TYPE http_request_duration_seconds summary\n")
	for route, r := range m.recent {
		s := slices.Sorted(slices.Values(r))
		for _, q := range []float64{0.5, 0.9, 0.99} {
			fmt.Fprintf(&b, "http_request_duration_seconds{route=%q,quantile=\"%g\"} %g\n", route, q, s[int(q*float64(len(s)-1))])
		}
		fmt.Fprintf(&b, "http_request_duration_seconds_sum{route=%q} %g\n", route, m.sum[route])
		fmt.Fprintf(&b, "http_request_duration_seconds_count{route=%q} %d\n", route, m.n[route])
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Write([]byte(b.String()))
}
