package drops

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stewardhq/steward/internal/testutil"
)

func TestCounterOneLinePerBurst(t *testing.T) {
	var out testutil.LockedBuffer
	c := New(slog.New(slog.NewTextHandler(&out, nil)), "queue full", "queue", "q1")
	for range 1000 {
		c.Add(1)
	}
	c.Add(0)
	c.Add(-3)
	if got := c.Total(); got != 1000 {
		t.Fatalf("Total = %d, want 1000", got)
	}
	c.Flush()
	c.Flush() // nothing new: no second line
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log line, got %q", lines)
	}
	for _, want := range []string{"queue full", "queue=q1", "dropped=1000", "dropped_total=1000"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}
