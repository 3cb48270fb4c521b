package collectors

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseMountInfoEscapes(t *testing.T) {
	mi := "40 30 0:37 /a\\040b /sys/fs/cgroup/with\\040space rw,relatime shared:1 master:2 - cgroup2 cgroup2 rw,nsdelegate\n"
	m, err := parseMountInfo(strings.NewReader(mi))
	if err != nil || len(m) != 1 {
		t.Fatal(m, err)
	}
	if m[0].root != "/a b" || m[0].point != "/sys/fs/cgroup/with space" || m[0].fstype != "cgroup2" || strings.Join(m[0].options, ",") != "rw,nsdelegate" {
		t.Fatalf("got %+v", m[0])
	}
	if _, err := parseMountInfo(strings.NewReader("1 2 3\n")); err == nil {
		t.Fatal("bad line accepted")
	}
}

func TestParseErrors(t *testing.T) {
	if err := parseKV(strings.NewReader("usage_usec 12x\n"), func([]byte, uint64) {}); err == nil || !strings.Contains(err.Error(), "usage_usec") {
		t.Errorf("parseKV: %v", err)
	}
	if err := parseSNMP(strings.NewReader("Tcp: A B\nTcp: 1\n"), func([]byte, []byte, float64) {}); err == nil {
		t.Error("snmp with missing values accepted")
	}
	var counts [len(tcpStates)]int
	if err := countTCPStates(strings.NewReader("header\n 0: 0100007F:1 0:0 ZZ\n"), &counts); err == nil {
		t.Error("bad tcp state accepted")
	}
	if v, err := parseValue(bytes.NewBufferString("max\n")); err != nil || v != math.MaxUint64 {
		t.Errorf("max: %v %v", v, err)
	}
	if _, err := atou([]byte("99999999999999999999999")); err == nil {
		t.Error("overflow accepted")
	}
	if v, err := atoi([]byte("-1")); err != nil || v != -1 {
		t.Errorf("atoi(-1) = %v, %v", v, err)
	}
}

// TestParseAllocs: parsing a file already in the reader's buffer
// allocates nothing, so a collection costs the kernel's time, not the
// garbage collector's.
func TestParseAllocs(t *testing.T) {
	b := bytes.NewBufferString(fixture(t, v2Fixture+"/cgroup-v2/memory.stat"))
	var anon uint64
	n := testing.AllocsPerRun(100, func() {
		parseKV(b, func(k []byte, v uint64) {
			if string(k) == "anon" {
				anon = v
			}
		})
	})
	if n != 0 || anon != 114688 {
		t.Fatalf("%v allocations, anon %d", n, anon)
	}
}

// TestSecondsPrintsShort: a duration in seconds prints as short as the
// duration, with no float noise (issue 10, defect 9).
func TestSecondsPrintsShort(t *testing.T) {
	d := 1434591254 * time.Nanosecond
	if got := strconv.FormatFloat(seconds(d), 'f', -1, 64); got != "1.434591254" {
		t.Fatalf("seconds(%v) prints %s", d, got)
	}
}
