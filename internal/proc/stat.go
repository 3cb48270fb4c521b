// Package proc parses /proc/PID/stat, the one file about a process that
// the supervisor (finding a program's children), the collectors (CPU, RSS
// and threads per program) and the tests (who is whose child, who is a
// zombie) all read. It is parsed by hand, without allocating, because the
// collectors read it for every process at every interval; prometheus/procfs
// is the test oracle (collectors/oracle_test.go).
package proc

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Stat is what /proc/PID/stat says about a process, as far as steward
// uses it. Times are in USER_HZ ticks.
type Stat struct {
	PID   int
	Comm  string // only when ParseStat is asked for it (WithComm)
	State byte   // R, S, D, Z, T, ...
	PPID  int
	Pgrp  int

	Utime, Stime, Cutime, Cstime uint64
	Threads                      int
	RSSPages                     int64
}

// Field numbers of proc(5).
const (
	fieldState   = 3
	fieldPPID    = 4
	fieldPgrp    = 5
	fieldUtime   = 14
	fieldStime   = 15
	fieldCutime  = 16
	fieldCstime  = 17
	fieldThreads = 20
	fieldRSS     = 24
)

// ParseStat reads one /proc/PID/stat. The command name, in parentheses,
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'. Given a *bytes.Buffer it parses in place without allocating
// (the command name excepted, which ParseStatComm copies).
func ParseStat(r io.Reader) (Stat, error) { return parse(r, false) }

// ParseStatComm is ParseStat with the command name.
func ParseStatComm(r io.Reader) (Stat, error) { return parse(r, true) }

func parse(r io.Reader, comm bool) (Stat, error) {
	var s Stat
	var b []byte
	if buf, ok := r.(*bytes.Buffer); ok {
		b = buf.Bytes()
	} else {
		var err error
		if b, err = io.ReadAll(r); err != nil {
			return s, fmt.Errorf("proc: %w", err)
		}
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return s, fmt.Errorf("proc: bad stat %q", clip(b))
	}
	pid, ok := atoi(bytes.TrimSpace(b[:open]))
	if !ok {
		return s, fmt.Errorf("proc: bad stat pid %q", clip(b[:open]))
	}
	s.PID = int(pid)
	if comm {
		s.Comm = string(b[open+1 : close])
	}
	rest := b[close+1:]
	n := 2 // fields 1 and 2 are the pid and the command
	for len(rest) > 0 && n < fieldRSS {
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\n') {
			rest = rest[1:]
		}
		i := 0
		for i < len(rest) && rest[i] != ' ' && rest[i] != '\n' {
			i++
		}
		if i == 0 {
			break
		}
		f := rest[:i]
		rest = rest[i:]
		n++
		if n == fieldState {
			s.State = f[0]
			continue
		}
		v, ok := atoi(f)
		if !ok {
			return s, fmt.Errorf("proc: bad stat field %d %q", n, clip(f))
		}
		switch n {
		case fieldPPID:
			s.PPID = int(v)
		case fieldPgrp:
			s.Pgrp = int(v)
		case fieldUtime:
			s.Utime = clamp(v)
		case fieldStime:
			s.Stime = clamp(v)
		case fieldCutime:
			s.Cutime = clamp(v)
		case fieldCstime:
			s.Cstime = clamp(v)
		case fieldThreads:
			s.Threads = int(v)
		case fieldRSS:
			s.RSSPages = v
		}
	}
	if n < fieldRSS {
		return s, fmt.Errorf("proc: bad stat: %d fields", n)
	}
	return s, nil
}

// clamp makes a counter the kernel reports as negative (cutime can be, for
// a moment, on some kernels) zero rather than a huge unsigned number.
func clamp(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

// atoi parses a decimal int64 without allocating.
func atoi(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		d := int64(c - '0')
		if c < '0' || c > '9' || v > (math.MaxInt64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if neg {
		v = -v
	}
	return v, true
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// ReadStat reads /proc/PID/stat under root ("/proc").
func ReadStat(root string, pid int) (Stat, error) {
	b, err := readFile(root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStatComm(bytes.NewBuffer(b))
}
