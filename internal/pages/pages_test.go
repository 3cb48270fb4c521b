package pages

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyRanges(t *testing.T) {
	maps := `00400000-008ca000 r-xp 00000000 fe:00 9995691                            /usr/local/bin/steward
008ca000-00dda000 r--p 004ca000 fe:00 9995691                            /usr/local/bin/steward
00dda000-00e3c000 rw-p 009da000 fe:00 9995691                            /usr/local/bin/steward
00e3c000-00e70000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r--s 00000000 fe:00 12                         /usr/local/bin/steward
7f0000001000-7f0000002000 r--p 00000000 fe:00 13                         /usr/local/bin/steward2
7f0000002000-7f0000003000 r-xp 00000000 fe:00 14                         /opt/my dir/steward
`
	got, err := readOnlyRanges(strings.NewReader(maps), "/usr/local/bin/steward")
	if err != nil {
		t.Fatal(err)
	}
	want := []addrRange{{0x400000, 0x8ca000}, {0x8ca000, 0xdda000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %x, want %x", got, want)
	}
	all, err := Mappings(strings.NewReader(maps), "/usr/local/bin/steward")
	if err != nil || len(all) != 4 || all[1] != (Mapping{0x8ca000, 0xdda000, "r--p", 0x4ca000}) || all[3].Perms != "r--s" {
		t.Fatalf("Mappings: %+v, %v", all, err)
	}
	got, _ = readOnlyRanges(strings.NewReader(maps), "/opt/my dir/steward")
	if len(got) != 1 || got[0] != (addrRange{0x7f0000002000, 0x7f0000003000}) {
		t.Fatalf("path with a space: %x", got)
	}
}

func rssFile(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no RssFile")
	return 0
}

// TestRelease: the test binary's code and read-only data leave its RSS,
// and the process goes on running (the code it needs maps back in).
func TestRelease(t *testing.T) {
	before := rssFile(t)
	n, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	if n == 0 || after >= before {
		t.Fatalf("released %d bytes; RssFile %d -> %d KiB", n, before, after)
	}
	t.Logf("released %d bytes of mappings; RssFile %d -> %d KiB", n, before, after)
	// Still works: a map, a string conversion, formatting, all code not
	// run since.
	m := map[string]int{"a": 1}
	if strconv.Itoa(m["a"]) != "1" {
		t.Fatal("?")
	}
}

func FuzzMappings(f *testing.F) {
	f.Add("00400000-008ca000 r-xp 00000000 fe:00 9995691 /usr/local/bin/steward\n", "/usr/local/bin/steward")
	f.Add("7f0000002000-7f0000003000 r-xp 00001000 fe:00 14   /opt/my dir/steward\nzz-1 r 0 0 0 /x\n", "/opt/my dir/steward")
	f.Add("1-0 r--p 0 0 0 /x\nffffffffffffffffff-1 r--p 0 0 0 /x\n", "/x")
	f.Fuzz(func(t *testing.T, maps, path string) {
		got, err := Mappings(strings.NewReader(maps), path)
		if err != nil {
			return
		}
		for _, m := range got {
			if m.End <= m.Start {
				t.Fatalf("mapping %+v ends before it starts", m)
			}
		}
	})
}
