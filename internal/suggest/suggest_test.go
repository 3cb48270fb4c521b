package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"status", "status", 0}, {"stauts", "status", 1}, {"", "abc", 3},
		{"intervl", "interval", 1}, {"timout", "timeout", 1}, {"ab", "ba", 1}, {"kitten", "sitting", 3},
	} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	cands := []string{"status", "start", "stop", "restart"}
	if got := Closest("stauts", cands, 2); got != "status" {
		t.Errorf("stauts: %q", got)
	}
	if got := Closest("nginx", cands, 2); got != "" {
		t.Errorf("nginx: %q", got)
	}
	if got := Closest("stp", []string{"stop", "step"}, 1); got != "step" {
		t.Errorf("a tie goes to the first in sort order: %q", got)
	}
}
