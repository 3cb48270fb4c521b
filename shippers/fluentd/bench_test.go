package fluentd

import (
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/supervisor"
)

// BenchmarkEncode measures building one 100-byte line's entry.
func BenchmarkEncode(b *testing.B) {
	e := &encoder{id: identity{app: "app", version: "1.0", host: "host", containerID: strings.Repeat("a", 64)},
		tag: "{app}.{program}", streams: map[streamKey]*stream{}, joiners: map[streamKey]*joiner{}}
	r := supervisor.LogRecord{Time: time.Now(), Program: "web", PID: 7, Source: "stdout", Text: strings.Repeat("x", 99)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		s := e.stream(&r)
		buf = e.entry(buf[:0], s, r.Time, r.Text, false)
	}
	b.SetBytes(int64(len(buf)))
}
