package proc

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// A line from a real kernel (6.1), for a command that names itself with
// spaces and parentheses.
const oddName = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 15 7 3 2 20 0 4 0 100 1000000 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"

func TestParseStatOddName(t *testing.T) {
	st, err := ParseStatComm(strings.NewReader(oddName))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "a (b) c", State: 'S', PPID: 1, Pgrp: 4242, Utime: 15, Stime: 7, Cutime: 3, Cstime: 2, Threads: 4, RSSPages: 321}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	if _, err := ParseStat(strings.NewReader("12 (x) S 1 2")); err == nil {
		t.Fatal("short stat accepted")
	}
	if _, err := ParseStat(strings.NewReader("12 x) S 1 2")); err == nil {
		t.Fatal("stat without '(' accepted")
	}
}

// TestParseStatClampsNegativeTimes: a negative time (as some kernels
// briefly report cutime) reads as zero instead of wrapping to 2^64.
func TestParseStatClampsNegativeTimes(t *testing.T) {
	line := strings.Replace(oddName, " 15 7 3 2 ", " 15 7 -3 2 ", 1)
	st, err := ParseStat(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.Cutime != 0 || st.Utime != 15 {
		t.Fatalf("cutime %d utime %d, want 0 and 15", st.Cutime, st.Utime)
	}
}

func TestParseStatDoesNotAllocate(t *testing.T) {
	var buf bytes.Buffer
	allocs := testing.AllocsPerRun(100, func() {
		buf.Reset()
		buf.WriteString(oddName)
		if _, err := ParseStat(&buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse", allocs)
	}
}

func TestReadStatSelfAndChildren(t *testing.T) {
	st, err := ReadStat("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.State != 'R' && st.State != 'S' {
		t.Fatalf("self: %+v", st)
	}
	found := false
	for _, pid := range Children("/proc", os.Getppid()) {
		found = found || pid == os.Getpid()
	}
	if !found {
		t.Fatalf("%d is not among the children of %d", os.Getpid(), os.Getppid())
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(oddName))
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0"))
	f.Add([]byte("1 ()) Z -1 -1 -1 0 -1 0 0 0 0 0 -9 -9 -9 -9 20 0 -1 0 1 0 -5 0"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatComm(bytes.NewBuffer(b))
		if err != nil {
			return
		}
		// Parsed stats are consistent: times never wrap.
		if st.Utime > 1<<63 || st.Cutime > 1<<63 {
			t.Fatalf("unclamped time in %+v", st)
		}
		if strings.Count(string(b), "(") == 0 {
			t.Fatalf("accepted a stat without a command: %q", b)
		}
	})
}

func TestSelfAndLocalPID(t *testing.T) {
	self, err := Self("/proc")
	if err != nil || self != os.Getpid() {
		t.Fatalf("Self = %d, %v; want %d", self, err, os.Getpid())
	}
	if n := LocalPID("/proc", self); n != os.Getpid() {
		t.Fatalf("LocalPID = %d, want %d", n, os.Getpid())
	}
}
