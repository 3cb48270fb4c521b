package sensu

import (
	"os"
	"strings"
	"testing"
)

// FuzzParseOSRelease: os-release comes from the image, any bytes; the
// parser never panics, and what it keeps is a key without '=' or a
// leading '#', and a value stripped of its quotes.
func FuzzParseOSRelease(f *testing.F) {
	for _, p := range []string{"testdata/debian-root/etc/os-release", "testdata/alpine-root/etc/os-release"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("# comment\nID='x'\n  VERSION_ID=\"1=2\"\nbad line\n=empty\n")
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parseOSRelease(strings.NewReader(s)) {
			if strings.Contains(k, "=") || strings.HasPrefix(k, "#") {
				t.Fatalf("kept key %q", k)
			}
			if strings.Trim(v, `"'`) != v {
				t.Fatalf("value %q of %q keeps its quotes", v, k)
			}
		}
	})
}
