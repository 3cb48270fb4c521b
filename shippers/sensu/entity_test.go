package sensu

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
)

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// machineSpecific are the fields that differ between two machines or two
// runs, compared by presence only.
var machineSpecific = map[string]bool{"system.hostname": true, "system.network": true, "last_seen": true,
	"metadata.name": true, "subscriptions": true, "sensu_agent_version": true}

// diffEntity lists the fields of want that got lacks or holds differently.
func diffEntity(prefix string, want, got map[string]any) []string {
	var diffs []string
	for k, wv := range want {
		key := strings.TrimPrefix(prefix+"."+k, ".")
		gv, ok := got[k]
		if !ok {
			diffs = append(diffs, key+": missing")
			continue
		}
		if machineSpecific[key] {
			continue
		}
		wm, wIsMap := wv.(map[string]any)
		gm, gIsMap := gv.(map[string]any)
		if wIsMap && gIsMap {
			diffs = append(diffs, diffEntity(key, wm, gm)...)
			continue
		}
		if !reflect.DeepEqual(wv, gv) {
			diffs = append(diffs, fmt.Sprintf("%s: %v, want %v", key, gv, wv))
		}
	}
	sort.Strings(diffs)
	return diffs
}

// captureConfig is the configuration the sensu-agent 6.12 capture was made
// with: --deregister, a deregistration handler, labels app/version/team,
// subscription gsub, keepalive handler keepalive.
func captureConfig(cfg *configs.Sensu) {
	cfg.EntityName = "g-steward"
	cfg.Subscriptions = []string{"gsub"}
	cfg.Labels = map[string]string{"team": "payments"}
	cfg.DeregistrationHandler = "dereg-rec"
	cfg.KeepaliveHandlers = []string{"keepalive"}
	cfg.Redact = configs.DefaultSensuRedact
}

// TestEntityMatchesSensuAgent: the entity steward registers, in a Debian
// 12.11 container under Docker, holds every field of the entity the real
// sensu-agent 6.12 registered there, with the same values where the data
// is the machine's, not the run's.
func TestEntityMatchesSensuAgent(t *testing.T) {
	want := readJSON(t, "testdata/sensu-go-6.12/sensu-agent-entity.json")
	if before := readJSON(t, "testdata/sensu-go-6.12/steward-entity-before.json"); len(diffEntity("", want, before)) == 0 {
		t.Fatal("the comparison does not tell steward's old entity from sensu-agent's")
	}
	p := newPeer(t)
	cfg := testConfig(p)
	captureConfig(cfg)
	a, err := New(cfg, Identity{App: "gapp", Version: "v1", Hostname: "vm", Root: "testdata/debian-root",
		StewardVersion: "v0.9.1", Getenv: func(string) string { return "" }}, executor(t), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(func() { a.Close(t.Context()) })
	waitFor(t, p, "registration", registeredIn(p, "g-steward"))
	raw, _ := p.Entity("default", "g-steward")
	var got map[string]any
	json.Unmarshal(raw, &got)
	if d := diffEntity("", want, got); len(d) > 0 {
		t.Errorf("steward's entity differs from sensu-agent 6.12's:\n%s\n%s", strings.Join(d, "\n"), raw)
	}
	if v := got["sensu_agent_version"]; v != "steward/v0.9.1" {
		t.Errorf("sensu_agent_version %v, want steward's own version", v)
	}
	if ua := p.Handshakes()[0].Header.Get("User-Agent"); ua != "steward/v0.9.1" {
		t.Errorf("User-Agent %q", ua)
	}

	// A check result carries processed_by and scheduler, as sensu-agent's.
	a.Publish(checks.Report{Name: "g-echo", Kind: checks.KindCommand, Result: checks.Result{Status: checks.OK, Output: "ok\n"}})
	waitFor(t, p, "the result", func() bool { return len(p.Events("default", "g-steward")["g-echo"]) > 0 })
	var ev map[string]any
	json.Unmarshal(p.Events("default", "g-steward")["g-echo"], &ev)
	wantEv := readJSON(t, "testdata/sensu-go-6.12/sensu-agent-check-event.json")
	gc, wc := ev["check"].(map[string]any), wantEv["check"].(map[string]any)
	if gc["processed_by"] != "g-steward" || gc["scheduler"] != wc["scheduler"] {
		t.Errorf("processed_by %v scheduler %v; sensu-agent's: %v %v", gc["processed_by"], gc["scheduler"], wc["processed_by"], wc["scheduler"])
	}
}

func TestSystemFacts(t *testing.T) {
	none := func(string) string { return "" }
	for _, c := range []struct {
		root, platform, family, version, libc, vm string
		env                                       map[string]string
	}{
		{"testdata/debian-root", "debian", "debian", "12.11", "glibc", "docker", nil},
		{"testdata/debian-root", "debian", "debian", "12.11", "glibc", "kubernetes", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}},
		{"testdata/alpine-root", "alpine", "alpine", "3.20.3", "musl", "", nil},
	} {
		getenv := none
		if c.env != nil {
			getenv = func(k string) string { return c.env[k] }
		}
		s := systemInfo(c.root, "h", getenv)
		role := ""
		if c.vm != "" {
			role = "guest"
		}
		if s.Platform != c.platform || s.PlatformFamily != c.family || s.PlatformVersion != c.version ||
			s.LibCType != c.libc || s.VMSystem != c.vm || s.VMRole != role {
			t.Errorf("%s %v: %+v", c.root, c.env, s)
		}
	}
	for id, like := range map[string][2]string{"ubuntu": {"debian", "debian"}, "centos": {"rhel fedora", "rhel"},
		"amzn": {"centos rhel fedora", "rhel"}, "fedora": {"", "fedora"}, "opensuse-leap": {"suse opensuse", "suse"}} {
		if got := platformFamily(id, like[0]); got != like[1] {
			t.Errorf("%s (%s): family %s, want %s", id, like[0], got, like[1])
		}
	}
	if !slices.Equal(configs.DefaultSensuRedact, []string{"password", "passwd", "pass", "api_key", "api_token", "access_key", "secret_key", "private_key", "secret"}) {
		t.Error("not sensu-agent's default redact list")
	}
}
