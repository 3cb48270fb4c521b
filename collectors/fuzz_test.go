package collectors

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzz targets of the kernel-file parsers: whatever a file holds, a
// parser returns values or an error, never panics or loops; each parser is
// fed through a *bytes.Buffer (the collectors' in-place path) and through a
// plain reader. Seeds are the real kernels' files of testdata/.

func seed(f *testing.F, paths ...string) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

const (
	v2Dir  = v2Fixture + "/cgroup-v2/"
	v1Dir  = v1Fixture + "/cgroup-v1/"
	netDir = v2Fixture + "/proc-net/"
)

// both runs parse on b as the collectors read it and as any reader.
func both(b []byte, parse func(r interface{ Read([]byte) (int, error) })) {
	parse(bytes.NewBuffer(bytes.Clone(b)))
	parse(strings.NewReader(string(b)))
}

func FuzzParseKV(f *testing.F) {
	seed(f, v2Dir+"memory.stat", v2Dir+"cpu.stat", v2Dir+"memory.events", v1Dir+"memory/memory.oom_control", "testdata/odd/memory.stat")
	f.Add([]byte("a -1\nb 18446744073709551616\nc max\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) {
			lines := bytes.Count(b, []byte("\n")) + 1
			n := 0
			parseKV(r, func(k []byte, v uint64) { n++ })
			if n > lines {
				t.Fatalf("%d keys from %d lines", n, lines)
			}
		})
	})
}

func FuzzParseValue(f *testing.F) {
	seed(f, v2Dir+"memory.current", v2Dir+"memory.max", v2Dir+"pids.max")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseValue(r) })
	})
}

func FuzzParseCPUMax(f *testing.F) {
	seed(f, v2Dir+"cpu.max")
	f.Add([]byte("max 100000\n"))
	f.Add([]byte("1 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) {
			cores, limited, err := parseCPUMax(r)
			if err == nil && limited && !(cores >= 0) {
				t.Fatalf("limit of %v cores", cores)
			}
		})
	})
}

func FuzzParseIOStat(f *testing.F) {
	seed(f, v2Dir+"io.stat")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseIOStat(r) })
	})
}

func FuzzParseBlkio(f *testing.F) {
	seed(f, v1Dir+"blkio/blkio.throttle.io_service_bytes", v1Dir+"blkio/blkio.throttle.io_serviced")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseBlkio(r) })
	})
}

func FuzzParsePSI(f *testing.F) {
	seed(f, v2Dir+"cpu.pressure", v2Dir+"memory.pressure", v2Dir+"io.pressure")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parsePSI(r) })
	})
}

func FuzzParseCgroupFile(f *testing.F) {
	seed(f, v2Dir+"_proc_self_cgroup", v1Dir+"_proc_self_cgroup_example")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseCgroupFile(r) })
	})
}

func FuzzParseMountInfo(f *testing.F) {
	seed(f, v2Dir+"_mountinfo", v1Dir+"_mountinfo")
	f.Add([]byte("40 30 0:37 /a\\040b /x\\1 rw - cgroup2 cgroup2 rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseMountInfo(r) })
	})
}

func FuzzParseNetDev(f *testing.F) {
	seed(f, netDir+"dev")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseNetDev(r, func([]byte, netDev) {}) })
	})
}

func FuzzParseSNMP(f *testing.F) {
	seed(f, netDir+"snmp", netDir+"netstat")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseSNMP(r, func([]byte, []byte, float64) {}) })
	})
}

func FuzzParseSockstat(f *testing.F) {
	seed(f, netDir+"sockstat")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) { parseSockstat(r, func([]byte, []byte, uint64) {}) })
	})
}

func FuzzCountTCPStates(f *testing.F) {
	seed(f, netDir+"tcp", netDir+"tcp6")
	f.Fuzz(func(t *testing.T, b []byte) {
		both(b, func(r interface{ Read([]byte) (int, error) }) {
			var counts [len(tcpStates)]int
			if countTCPStates(r, &counts) == nil {
				total := 0
				for _, n := range counts {
					total += n
				}
				if lines := bytes.Count(b, []byte("\n")) + 1; total > lines {
					t.Fatalf("%d sockets from %d lines", total, lines)
				}
			}
		})
	})
}

// diagMessage is one netlink message of the type and payload given.
func diagMessage(typ uint16, payload []byte) []byte {
	m := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(payload)+4)
	binary.NativeEndian.PutUint32(m[0:], uint32(unix.SizeofNlMsghdr+len(payload)))
	binary.NativeEndian.PutUint16(m[4:], typ)
	m = append(m, payload...)
	for len(m)%unix.NLMSG_ALIGNTO != 0 {
		m = append(m, 0)
	}
	return m
}

func FuzzCountDiagStates(f *testing.F) {
	established := make([]byte, 72)
	established[0], established[1] = unix.AF_INET, 1
	f.Add(append(append(diagMessage(tcpdiagGetsock, established), diagMessage(tcpdiagGetsock, established)...), diagMessage(unix.NLMSG_DONE, nil)...))
	f.Add(diagMessage(unix.NLMSG_ERROR, []byte{0xf3, 0xff, 0xff, 0xff}))
	f.Add(diagMessage(tcpdiagGetsock, nil)[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		var counts [len(tcpStates)]int
		countDiagStates(b, &counts)
		total := 0
		for _, n := range counts {
			total += n
		}
		if total > len(b)/unix.SizeofNlMsghdr {
			t.Fatalf("%d sockets from %d bytes", total, len(b))
		}
	})
}

func TestCountDiagStates(t *testing.T) {
	established, listen := make([]byte, 72), make([]byte, 72)
	established[1], listen[1] = 1, 10
	msgs := append(append(append(diagMessage(tcpdiagGetsock, established), diagMessage(tcpdiagGetsock, listen)...),
		diagMessage(tcpdiagGetsock, established)...), diagMessage(unix.NLMSG_DONE, nil)...)
	var counts [len(tcpStates)]int
	done, err := countDiagStates(msgs, &counts)
	if !done || err != nil || counts[0] != 2 || counts[9] != 1 {
		t.Fatalf("done %v err %v counts %v", done, err, counts)
	}
	if _, err := countDiagStates(diagMessage(unix.NLMSG_ERROR, []byte{0xf3, 0xff, 0xff, 0xff}), &counts); err == nil {
		t.Fatal("netlink error not reported")
	}
}
