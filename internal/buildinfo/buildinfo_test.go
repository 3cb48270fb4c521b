package buildinfo

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	if got := Read("v1.2.3"); got.Version != "v1.2.3" || !strings.HasPrefix(got.String(), "v1.2.3 (") {
		t.Errorf("stamped: %+v %q", got, got.String())
	}
	for _, unstamped := range []string{"", "dev"} {
		got := Read(unstamped)
		if got.Version == "dev" || got.Version == "" {
			t.Errorf("%q: version %q", unstamped, got.Version)
		}
		if got.Revision != "" && !strings.Contains(got.Version, got.Revision[:12]) {
			t.Errorf("a build from a repository does not name its revision: %+v", got)
		}
	}
	i := Info{Version: "devel-0123456789ab-dirty", Revision: "0123456789abcdef", Time: "2026-11-28T19:00:00Z", Modified: true, GoVersion: "go1.26"}
	if s := i.String(); s != "devel-0123456789ab-dirty (revision 0123456789abcdef (modified), committed 2026-11-28T19:00:00Z, go1.26)" {
		t.Errorf("%q", s)
	}
}
