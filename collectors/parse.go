package collectors

// The kernel files read here are parsed by hand rather than with
// containerd/cgroups and prometheus/procfs: linking those into steward
// cost 3.2 MB of RSS and 4.5 ms at every container start (protobuf stat
// types, cilium/ebpf and dbus behind cgroup2, twenty regexps compiled at
// init by procfs), which PID 1's budget does not allow. The tests check
// these parsers against both libraries on the same files (oracle_test.go).
// Each parser takes an io.Reader; given the *bytes.Buffer a collector
// reads a file into, it parses in place without copying or allocating.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
)

// content returns what r holds: the bytes of a *bytes.Buffer as they are,
// anything else read whole.
func content(r io.Reader) ([]byte, error) {
	if b, ok := r.(*bytes.Buffer); ok {
		return b.Bytes(), nil
	}
	return io.ReadAll(r)
}

// eachLine calls f for each line of b, without its newline.
func eachLine(b []byte, f func(line []byte) error) error {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if err := f(line); err != nil {
			return err
		}
	}
	return nil
}

// fields splits line on spaces and tabs into out, as strings.Fields
// does, without allocating: it returns at most cap(out) fields, so each
// caller's array bounds what it needs.
func fields(line []byte, out [][]byte) [][]byte {
	out = out[:0]
	for len(out) < cap(out) {
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			line = line[1:]
		}
		if len(line) == 0 {
			return out
		}
		i := 0
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		out = append(out, line[:i])
		line = line[i:]
	}
	return out
}

// errRange is a number too large for 64 bits.
var errRange = errors.New("out of range")

// atou parses a decimal uint64; "max" is math.MaxUint64.
func atou(b []byte) (uint64, error) {
	if string(b) == "max" {
		return math.MaxUint64, nil
	}
	var v uint64
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad number %q", b)
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("number %q: %w", b, errRange)
		}
		v = v*10 + d
	}
	return v, nil
}

// atoi parses a decimal int64, which may be negative.
func atoi(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, err := atou(b)
	if err != nil || u > math.MaxInt64 || string(b) == "max" {
		return 0, fmt.Errorf("bad number %q", b)
	}
	if neg {
		return -int64(u), nil
	}
	return int64(u), nil
}

// errSkipped marks an error about some lines of a file that were passed
// over: the rest of the file was read, and its values are good.
var errSkipped = errors.New("lines skipped")

// parseKV reads "key value" lines (cpu.stat, memory.stat, memory.events,
// cpuacct.stat, memory.oom_control) and calls set for each. Like
// containerd's parser, it reads a negative value (memory.stat's counters
// can briefly go below zero on some kernels) as zero. A line it cannot
// read is skipped, not the whole file: the error then wraps errSkipped and
// names the first such line, and every other key was set.
func parseKV(r io.Reader, set func(key []byte, v uint64)) error {
	b, err := content(r)
	if err != nil {
		return err
	}
	var buf [4][]byte
	var bad error
	eachLine(b, func(line []byte) error {
		f := fields(line, buf[:0])
		if len(f) == 0 {
			return nil
		}
		if len(f) != 2 {
			bad = cmp.Or(bad, fmt.Errorf("bad line %q: %w", line, errSkipped))
			return nil
		}
		v, err := atou(f[1])
		if err != nil && len(f[1]) > 1 && f[1][0] == '-' {
			if _, nerr := atou(f[1][1:]); nerr == nil || errors.Is(nerr, errRange) {
				v, err = 0, nil
			}
		}
		if err != nil {
			bad = cmp.Or(bad, fmt.Errorf("%s: %w (%w)", f[0], err, errSkipped))
			return nil
		}
		set(f[0], v)
		return nil
	})
	return bad
}

// parseValue reads a file holding one number or "max" (math.MaxUint64).
func parseValue(r io.Reader) (uint64, error) {
	b, err := content(r)
	if err != nil {
		return 0, err
	}
	return atou(bytes.TrimSpace(b))
}

// parseCPUMax reads v2 cpu.max: "max 100000" (no limit) or "50000 100000".
func parseCPUMax(r io.Reader) (cores float64, limited bool, err error) {
	b, err := content(r)
	if err != nil {
		return 0, false, err
	}
	var buf [3][]byte
	f := fields(bytes.TrimSpace(b), buf[:0])
	if len(f) != 2 {
		return 0, false, fmt.Errorf("bad cpu.max %q", b)
	}
	if string(f[0]) == "max" {
		return 0, false, nil
	}
	q, err1 := atou(f[0])
	p, err2 := atou(f[1])
	if err1 != nil || err2 != nil || p == 0 || p == math.MaxUint64 {
		return 0, false, fmt.Errorf("bad cpu.max %q", b)
	}
	return float64(q) / float64(p), true, nil
}

// parseIOStat sums v2 io.stat over devices: "8:0 rbytes=1 wbytes=2 rios=3
// wios=4 dbytes=0 dios=0".
func parseIOStat(r io.Reader) (rbytes, wbytes, rios, wios uint64, err error) {
	b, err := content(r)
	if err != nil {
		return
	}
	var buf [16][]byte
	err = eachLine(b, func(line []byte) error {
		f := fields(line, buf[:0])
		for _, kv := range f[min(1, len(f)):] {
			k, v, ok := bytes.Cut(kv, []byte{'='})
			if !ok {
				continue
			}
			n, err := atou(v)
			if err != nil {
				return fmt.Errorf("io.stat %s: %w", k, err)
			}
			switch string(k) {
			case "rbytes":
				rbytes += n
			case "wbytes":
				wbytes += n
			case "rios":
				rios += n
			case "wios":
				wios += n
			}
		}
		return nil
	})
	return
}

// parseBlkio sums the Read and Write lines of a v1 blkio file
// ("8:0 Read 4096"); "Total" lines are skipped.
func parseBlkio(r io.Reader) (read, write uint64, err error) {
	b, err := content(r)
	if err != nil {
		return 0, 0, err
	}
	var buf [4][]byte
	err = eachLine(b, func(line []byte) error {
		f := fields(line, buf[:0])
		if len(f) != 3 {
			return nil // "Total N", or empty
		}
		n, err := atou(f[2])
		if err != nil {
			return fmt.Errorf("blkio %s: %w", f[1], err)
		}
		switch string(f[1]) {
		case "Read":
			read += n
		case "Write":
			write += n
		}
		return nil
	})
	return read, write, err
}

// psi holds the stall totals of one pressure file, in microseconds.
type psi struct {
	some, full       uint64
	hasSome, hasFull bool
}

// parsePSI reads a pressure file ("some avg10=0.00 avg60=0.00 avg300=0.00
// total=123"): the totals only, from which any average can be derived.
func parsePSI(r io.Reader) (psi, error) {
	var p psi
	b, err := content(r)
	if err != nil {
		return p, err
	}
	err = eachLine(b, func(line []byte) error {
		kind, rest, _ := bytes.Cut(line, []byte{' '})
		i := bytes.Index(rest, []byte("total="))
		if i < 0 {
			return nil
		}
		n, err := atou(bytes.TrimSpace(rest[i+len("total="):]))
		if err != nil {
			return fmt.Errorf("pressure total: %w", err)
		}
		switch string(kind) {
		case "some":
			p.some, p.hasSome = n, true
		case "full":
			p.full, p.hasFull = n, true
		}
		return nil
	})
	return p, err
}

// cgroupLine is one line of /proc/PID/cgroup: "4:memory:/docker/abc",
// or "0::/path" for the v2 hierarchy.
type cgroupLine struct {
	id          int
	controllers []string
	path        string
}

func parseCgroupFile(r io.Reader) ([]cgroupLine, error) {
	b, err := content(r)
	if err != nil {
		return nil, err
	}
	var out []cgroupLine
	err = eachLine(b, func(line []byte) error {
		if len(line) == 0 {
			return nil
		}
		id, rest, ok1 := bytes.Cut(line, []byte{':'})
		ctrls, path, ok2 := bytes.Cut(rest, []byte{':'})
		n, err := strconv.Atoi(string(id))
		if !ok1 || !ok2 || err != nil {
			return fmt.Errorf("bad cgroup line %q", line)
		}
		l := cgroupLine{id: n, path: string(path)}
		for c := range bytes.SplitSeq(ctrls, []byte{','}) {
			if len(c) > 0 {
				l.controllers = append(l.controllers, string(c))
			}
		}
		out = append(out, l)
		return nil
	})
	return out, err
}

// mount is one line of /proc/PID/mountinfo, the fields the cgroup
// collector needs.
type mount struct {
	root, point, fstype string
	options             []string // superblock options: "rw", "cpu", "cpuacct"
}

// parseMountInfo reads mountinfo: "36 35 98:0 /root /point opts
// [optional...] - fstype source superopts".
func parseMountInfo(r io.Reader) ([]mount, error) {
	b, err := content(r)
	if err != nil {
		return nil, err
	}
	var out []mount
	var buf [32][]byte
	err = eachLine(b, func(line []byte) error {
		f := fields(line, buf[:0])
		if len(f) == 0 {
			return nil
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if string(f[i]) == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			return fmt.Errorf("bad mountinfo line %q", line)
		}
		m := mount{root: unescapeOctal(f[3]), point: unescapeOctal(f[4]), fstype: string(f[sep+1])}
		if sep+3 < len(f) {
			for o := range bytes.SplitSeq(f[sep+3], []byte{','}) {
				m.options = append(m.options, string(o))
			}
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// unescapeOctal undoes mountinfo's escaping of space, tab, newline and
// backslash as \040, \011, \012 and \134.
func unescapeOctal(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) {
			if n, err := strconv.ParseUint(string(b[i+1:i+4]), 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// netDev is one interface's line of /proc/net/dev.
type netDev struct {
	rxBytes, rxPackets, rxErrors, rxDrops uint64
	txBytes, txPackets, txErrors, txDrops uint64
}

// parseNetDev reads /proc/net/dev: two header lines, then "name: 16
// numbers" (receive bytes packets errs drop fifo frame compressed
// multicast, transmit bytes packets errs drop fifo colls carrier
// compressed).
func parseNetDev(r io.Reader, f func(iface []byte, d netDev)) error {
	b, err := content(r)
	if err != nil {
		return err
	}
	var buf [20][]byte
	n := 0
	return eachLine(b, func(line []byte) error {
		if n++; n <= 2 {
			return nil
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return fmt.Errorf("bad net/dev line %q", line)
		}
		v := fields(rest, buf[:0])
		if len(v) < 16 {
			return fmt.Errorf("bad net/dev line %q", line)
		}
		var u [16]uint64
		for i := range u {
			if u[i], err = atou(v[i]); err != nil {
				return fmt.Errorf("net/dev %s: %w", bytes.TrimSpace(name), err)
			}
		}
		f(bytes.TrimSpace(name), netDev{u[0], u[1], u[2], u[3], u[8], u[9], u[10], u[11]})
		return nil
	})
}

// fieldsPool holds the field slices of parseSNMP, whose lines have over
// a hundred fields.
var fieldsPool = sync.Pool{New: func() any { return new([2][256][]byte) }}

// parseSNMP reads /proc/net/snmp and /proc/net/netstat: pairs of lines,
// "Tcp: Name1 Name2 ..." then "Tcp: 1 2 ...", calling f for each value.
// Values may be negative (MaxConn is -1).
func parseSNMP(r io.Reader, f func(proto, name []byte, v float64)) error {
	b, err := content(r)
	if err != nil {
		return err
	}
	var names, values [][]byte
	scratch := fieldsPool.Get().(*[2][256][]byte)
	defer fieldsPool.Put(scratch)
	nbuf, vbuf := scratch[0][:0], scratch[1][:0]
	var header []byte
	return eachLine(b, func(line []byte) error {
		if len(line) == 0 {
			return nil
		}
		if header == nil {
			header = line
			names = fields(line, nbuf)
			return nil
		}
		values = fields(line, vbuf)
		hdr := header
		header = nil
		if len(values) != len(names) || len(names) == 0 || !bytes.Equal(names[0], values[0]) {
			return fmt.Errorf("snmp: header and values do not match: %q / %q", hdr, line)
		}
		proto := bytes.TrimSuffix(names[0], []byte{':'})
		for i := 1; i < len(names); i++ {
			if n, err := atou(values[i]); err == nil {
				f(proto, names[i], float64(n))
			} else if n, err := atoi(values[i]); err == nil {
				f(proto, names[i], float64(n))
			} else {
				return fmt.Errorf("snmp %s %s: %w", proto, names[i], err)
			}
		}
		return nil
	})
}

// parseSockstat reads /proc/net/sockstat: "sockets: used 8", "TCP: inuse
// 1 orphan 0 tw 2 alloc 1 mem 0", ...
func parseSockstat(r io.Reader, f func(proto, key []byte, v uint64)) error {
	b, err := content(r)
	if err != nil {
		return err
	}
	var buf [16][]byte
	return eachLine(b, func(line []byte) error {
		fs := fields(line, buf[:0])
		if len(fs) == 0 {
			return nil
		}
		if len(fs)%2 != 1 {
			return fmt.Errorf("bad sockstat line %q", line)
		}
		proto := bytes.TrimSuffix(fs[0], []byte{':'})
		for i := 1; i+1 < len(fs); i += 2 {
			n, err := atou(fs[i+1])
			if err != nil {
				return fmt.Errorf("sockstat %s %s: %w", proto, fs[i], err)
			}
			f(proto, fs[i], n)
		}
		return nil
	})
}

// countTCPStates adds the sockets of /proc/net/tcp or tcp6 to counts by
// state (the 4th column, hex: 01 established ... 0B closing).
func countTCPStates(r io.Reader, counts *[len(tcpStates)]int) error {
	b, err := content(r)
	if err != nil {
		return err
	}
	var buf [5][]byte
	first := true
	return eachLine(b, func(line []byte) error {
		if first { // header
			first = false
			return nil
		}
		f := fields(line, buf[:0])
		if len(f) == 0 {
			return nil
		}
		if len(f) < 4 {
			return fmt.Errorf("bad tcp line %q", line)
		}
		st, ok := hexByte(f[3])
		if !ok {
			return fmt.Errorf("bad tcp state %q", f[3])
		}
		if st >= 1 && int(st) <= len(counts) {
			counts[st-1]++
		}
		return nil
	})
}

// hexByte parses a two-digit hex number.
func hexByte(b []byte) (int, bool) {
	if len(b) != 2 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v*16 + int(c-'0')
		case c >= 'A' && c <= 'F':
			v = v*16 + int(c-'A'+10)
		case c >= 'a' && c <= 'f':
			v = v*16 + int(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
