package commands

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stewardhq/steward/supervisor"
)

// TestLogRingKeepsTheLastLines: the window holds the last max lines (and
// at most ringBytesPerProgram of text) of each program, in order.
func TestLogRingKeepsTheLastLines(t *testing.T) {
	r := newLogRing(100)
	for i := range 1000 {
		r.add([]supervisor.LogRecord{{Program: "a", Text: strconv.Itoa(i)}, {Program: "b", Text: "b" + strconv.Itoa(i)}})
	}
	recs, _ := r.snapshot("a", -1, false)
	if len(recs) != 100 || recs[0].Text != "900" || recs[99].Text != "999" {
		t.Fatalf("kept %d lines, %q..%q", len(recs), recs[0].Text, recs[len(recs)-1].Text)
	}
	if recs, _ = r.snapshot("b", 3, false); len(recs) != 3 || recs[2].Text != "b999" {
		t.Fatalf("last 3 of b: %+v", recs)
	}
	if recs, _ = r.snapshot("a", 0, false); len(recs) != 0 {
		t.Fatalf("-n 0 gave %d lines", len(recs))
	}
	big := strings.Repeat("x", ringBytesPerProgram/4)
	for range 10 {
		r.add([]supervisor.LogRecord{{Program: "c", Text: big}})
	}
	if recs, _ = r.snapshot("c", -1, false); len(recs) != 4 {
		t.Fatalf("kept %d lines of %d bytes, want the 4 that fit %d bytes", len(recs), len(big), ringBytesPerProgram)
	}
}
