package main

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestReloadNamesMetricsURL: a reload that changes a program's metrics_url
// says it is not applied (the scrapes are the metrics', kept until steward
// starts again) rather than passing in silence.
func TestReloadNamesMetricsURL(t *testing.T) {
	conf := "[metrics]\nprint = true\n[programs.web]\nmain = true\ncommand = [\"sleep\", \"1\"]\nmetrics_url = %q\n"
	old := testutil.LoadConfig(t, fmt.Sprintf(conf, "http://127.0.0.1:8080/metrics"))
	next := testutil.LoadConfig(t, fmt.Sprintf(conf, "http://127.0.0.1:9090/metrics"))
	if got := changedSections(old, next); !slices.Contains(got, "programs.web.metrics_url") {
		t.Fatalf("changed: %v", got)
	}
	if got := changedSections(old, old); len(got) != 0 {
		t.Fatalf("changed with no change: %v", got)
	}
}
