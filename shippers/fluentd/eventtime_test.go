package fluentd

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/tinylib/msgp/msgp"
)

// TestEventTimeOracle: the hand-written EventTime is byte for byte what
// fluent-logger-golang encodes (through msgp's extension encoder, as its
// client sends it), and decodes back with its EventTime to the same
// instant, over the times both can express (fluent-logger's seconds are an
// int32).
func TestEventTimeOracle(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0), time.Unix(1, 999_999_999), time.Unix(1<<31-1, 999_999_999),
		time.Date(2026, 11, 28, 19, 40, 1, 123_456_789, time.FixedZone("x", 3600)),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		times = append(times, time.Unix(r.Int64N(1<<31), r.Int64N(1e9)))
	}
	for _, tm := range times {
		got := appendEventTime(nil, tm)
		et := fluent.EventTime(tm)
		want, err := msgp.AppendExtension(nil, &et)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%v: % x, fluent-logger: % x", tm, got, want)
		}
		var back fluent.EventTime
		if _, err := msgp.ReadExtensionBytes(got, &back); err != nil {
			t.Fatal(err)
		}
		if !time.Time(back).Equal(tm) {
			t.Fatalf("%v decoded as %v", tm, time.Time(back))
		}
	}
}

// TestEventTimePast2038: the seconds are the protocol's uint32, not
// fluent-logger's int32, which turns 2038-01-19 into 1901.
func TestEventTimePast2038(t *testing.T) {
	tm := time.Date(2040, 1, 1, 0, 0, 0, 5, time.UTC)
	b := appendEventTime(nil, tm)
	if len(b) != 10 || b[0] != 0xd7 || b[1] != 0 {
		t.Fatalf("% x", b)
	}
	sec := uint32(b[2])<<24 | uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])
	if int64(sec) != tm.Unix() {
		t.Fatalf("seconds %d, want %d", sec, tm.Unix())
	}
}
