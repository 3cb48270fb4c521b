package scrape

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/collectors"
	"github.com/stewardhq/steward/collectors/ingest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func collect(t *testing.T, s *Scraper) (map[string]float64, error) {
	t.Helper()
	got := map[string]float64{}
	err := s.Collect(context.Background(), func(smp collectors.Sample) {
		k := smp.Name
		for _, t := range smp.Tags {
			k += ";" + t.Key + "=" + t.Value
		}
		got[k] = smp.Value
	})
	return got, err
}

// TestScrape: the app's exposition becomes series tagged program=; a body
// over the limit, an error status and a hung endpoint fail that target
// only, within the timeout, counted.
func TestScrape(t *testing.T) {
	page, _ := os.ReadFile("testdata/app.prom")
	hang := make(chan struct{})
	defer close(hang)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Write(page)
		case "/big":
			w.Write([]byte(strings.Repeat("big_metric 1\n", 10000)))
		case "/hang":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	got := map[string]float64{}
	for _, p := range []string{"web", "big", "err", "hang"} {
		path := "/" + p
		if p == "web" {
			path = "/metrics"
		}
		s := New(Config{Program: p, URL: srv.URL + path, MaxBytes: 1000, Timeout: 500 * time.Millisecond}, quiet)
		part, err := collect(t, s)
		if (err == nil) != (p == "web") {
			t.Errorf("%s: error %v", p, err)
		}
		for k, v := range part {
			got[k] = v
		}
	}
	for k, v := range map[string]float64{
		"http_requests_total;code=200;method=get;program=web":                        1027,
		"http_request_duration_seconds_bucket;le=+Inf;program=web":                   144320,
		"rpc_duration_seconds;program=web;quantile=0.99":                             76656,
		"steward.appmetrics.dropped_total;input=scrape;program=big;reason=too_large": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["big_metric;program=big"] != 1 {
		t.Errorf("what fit in the limit is kept: %v", got["big_metric;program=big"])
	}
}

func TestScrapeMaxSeries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 100 {
			w.Write([]byte("m{i=\"" + strings.Repeat("x", i) + "\"} 1\n"))
		}
	}))
	defer srv.Close()
	s := New(Config{Program: "web", URL: srv.URL, MaxSeries: 10}, quiet)
	if _, err := collect(t, s); err != nil {
		t.Fatal(err)
	}
	if n := s.stats.Dropped(ingest.ReasonTooManySeries); n != 90 {
		t.Fatalf("dropped %d", n)
	}
}
