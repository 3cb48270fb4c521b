package fluentd

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/supervisor"
)

func testEncoder(programs map[string]*configs.ProgramLogs) *encoder {
	return &encoder{
		id:       identity{app: "shop", version: "1.2.3", host: "box", containerID: strings.Repeat("c", 64), containerName: "/shop-1", fields: map[string]string{"env": "prod", "pid": "spoof", "container_name": "spoof"}},
		tag:      "{app}.{program}",
		programs: programs,
		streams:  map[streamKey]*stream{},
		joiners:  map[streamKey]*joiner{},
	}
}

// decodeEntry reads [EventTime, record] as the spec lays it out.
func decodeEntry(t *testing.T, b []byte) (sec, nsec uint32, rec map[string]any, rest []byte) {
	t.Helper()
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		t.Fatalf("entry header: %d %v", n, err)
	}
	if b[0] != 0xd7 || b[1] != 0x00 {
		t.Fatalf("time is not fixext 8 of type 0: % x", b[:2])
	}
	sec, nsec = binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint32(b[6:])
	rec, rest, err = msgp.ReadMapStrIntfBytes(b[10:], nil)
	if err != nil {
		t.Fatal(err)
	}
	return sec, nsec, rec, rest
}

func TestEntryFields(t *testing.T) {
	e := testEncoder(nil)
	tm := time.Unix(1441588984, 123456789)
	r := supervisor.LogRecord{Time: tm, Program: "web", PID: 7, Source: "stderr", Text: "bad \xff and \x00"}
	s := e.stream(&r)
	if s.tag != "shop.web" {
		t.Errorf("tag %q", s.tag)
	}
	sec, nsec, rec, rest := decodeEntry(t, e.entry(nil, s, r.Time, r.Text, false))
	if sec != 1441588984 || nsec != 123456789 || len(rest) != 0 {
		t.Errorf("time %d.%09d", sec, nsec)
	}
	want := map[string]any{"log": "bad \xff and \x00", "source": "stderr", "program": "web", "app": "shop",
		"version": "1.2.3", "host": "box", "container_id": strings.Repeat("c", 64), "container_name": "/shop-1", "pid": int64(7), "env": "prod"}
	if len(rec) != len(want) {
		t.Errorf("record %v, want %v", rec, want)
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %#v, want %#v", k, rec[k], v)
		}
	}
}

func TestPartialParts(t *testing.T) {
	e := testEncoder(nil)
	r := supervisor.LogRecord{Time: time.Now(), Program: "web", PID: 7, Source: "stdout"}
	s := e.stream(&r)
	var recs []map[string]any
	for i, partial := range []bool{true, true, false, false} {
		_, _, rec, _ := decodeEntry(t, e.entry(nil, s, r.Time, strings.Repeat("x", i+1), partial))
		recs = append(recs, rec)
	}
	for i, rec := range recs[:3] {
		if rec["partial_message"] != "true" || rec["partial_ordinal"] != string(rune('1'+i)) ||
			rec["partial_id"] != recs[0]["partial_id"] || rec["partial_last"] != map[bool]string{true: "true", false: "false"}[i == 2] {
			t.Errorf("part %d: %v", i+1, rec)
		}
		if p, _ := rec["partial"].(bool); p != (i < 2) {
			t.Errorf("part %d: partial = %v", i+1, rec["partial"])
		}
	}
	if _, ok := recs[3]["partial_id"]; ok || recs[3]["partial"] != nil {
		t.Errorf("the whole line after a cut one is marked: %v", recs[3])
	}
	_, _, again, _ := decodeEntry(t, e.entry(nil, s, r.Time, "y", true))
	if again["partial_id"] == recs[0]["partial_id"] || again["partial_ordinal"] != "1" {
		t.Errorf("a new cut line reuses the old id: %v", again)
	}
}

func TestJSONFields(t *testing.T) {
	e := testEncoder(map[string]*configs.ProgramLogs{"api": {ParseJSON: true}})
	r := supervisor.LogRecord{Time: time.Now(), Program: "api", PID: 3, Source: "stdout"}
	s := e.stream(&r)
	for text, want := range map[string]map[string]any{
		`{"level":"info","n":12345678901,"f":0.5,"ok":true,"none":null,"arr":[1,"a"],"pid":1,"log":"x"}`: {
			"level": "info", "n": int64(12345678901), "f": 0.5, "ok": true, "none": nil, "pid": int64(3), "log": `{"level":"info","n":12345678901,"f":0.5,"ok":true,"none":null,"arr":[1,"a"],"pid":1,"log":"x"}`},
		`  {"a":1}  `:     {"a": int64(1)},
		`{"a":1} {"b":2}`: {"a": nil},
		`[1,2]`:           {"a": nil},
		`{"a":`:           {"a": nil},
		`{"big":1e400}`:   {"big": "1e400"}, // beyond float64: kept as text
	} {
		_, _, rec, _ := decodeEntry(t, e.entry(nil, s, r.Time, text, false))
		for k, v := range want {
			if got, ok := rec[k]; (v == nil && ok && k != "none") || (v != nil && got != v) {
				t.Errorf("%s: %s = %#v, want %#v (record %v)", text, k, got, v, rec)
			}
		}
		if rec["log"] != text {
			t.Errorf("%s: the raw line is not kept in log", text)
		}
	}
}

func TestTagTemplate(t *testing.T) {
	id := identity{app: "shop", version: "v9", host: "h"}
	if got := expandTag("{app}.{program}.{source}.{host}.{version}", id, "web", "stderr"); got != "shop.web.stderr.h.v9" {
		t.Fatal(got)
	}
}
