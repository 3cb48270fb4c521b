package sensu

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev2 "github.com/sensu/core/v2"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/shippers/sensu/sensupeer"
)

func fileSha512(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

// request publishes a check request for command to the agent and returns
// the stored result.
func request(t *testing.T, p *sensupeer.Peer, name, command string, env ...string) *corev2.Check {
	t.Helper()
	cfg := corev2.FixtureCheckConfig(name)
	cfg.Command = command
	cfg.EnvVars = env
	cfg.Timeout = 30
	b, _ := json.Marshal(&corev2.CheckRequest{Config: cfg, Issued: 1700000000})
	if n := p.Publish("default", "entity:web-7f9c", b); n != 1 {
		t.Fatalf("published to %d agents", n)
	}
	waitFor(t, p, name+"'s result", func() bool { return len(p.Events("default", "web-7f9c")[name]) > 0 })
	return decodeEvent(t, p.Events("default", "web-7f9c")[name]).Check
}

func TestAllowList(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check_disk.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"disk $1 ${LEVEL:-unset}\"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "check_other.sh")
	os.WriteFile(other, []byte("#!/bin/sh\necho other\n"), 0o755)
	list := filepath.Join(dir, "allow-list.yaml")
	os.WriteFile(list, []byte(`
- exec: `+script+`
  args: ["-w", "80"]
  sha512: `+fileSha512(t, script)+`
  enable_env: true
- exec: `+other+`
  args: [""]
  sha512: `+strings.Repeat("ab", 64)+`
- exec: /bin/echo
  args: ["hello"]
`), 0o644)
	f, _ := os.Open(list)
	rules, err := configs.ParseAllowList(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t)
	cfg := testConfig(p)
	cfg.AllowListFile, cfg.AllowList = list, rules
	_, logs := startAgent(t, cfg)
	waitFor(t, p, "the session", func() bool { return p.Connected("web-7f9c") })

	if c := request(t, p, "allowed", script+" -w 80", "LEVEL=high"); c.Status != 1 || strings.TrimSpace(c.Output) != "disk -w high" {
		t.Errorf("allowed command: status %d output %q", c.Status, c.Output)
	}
	if c := request(t, p, "no-env", "/bin/echo hello", "X=1"); c.Status != 0 || strings.TrimSpace(c.Output) != "hello" {
		t.Errorf("allowed command: status %d output %q", c.Status, c.Output)
	}
	marker := filepath.Join(dir, "owned")
	for name, cmd := range map[string]string{
		"refused":   "touch " + marker,
		"injected":  script + " -w 80; touch " + marker,
		"extra-arg": "/bin/echo hello world",
	} {
		c := request(t, p, name, cmd)
		if c.Status != 3 || !strings.Contains(c.Output, "is not on the allow list") || !strings.Contains(c.Output, list) {
			t.Errorf("%s: status %d output %q", name, c.Status, c.Output)
		}
	}
	c := request(t, p, "tampered", other)
	if c.Status != 3 || !strings.Contains(c.Output, "sha512") {
		t.Errorf("sha512 mismatch: status %d output %q", c.Status, c.Output)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a refused command ran")
	}
	if !strings.Contains(logs.String(), "check request refused") {
		t.Errorf("no log line for the refusal:\n%s", logs.String())
	}
}

// TestNoAllowListRefusesEverything: the default runs nothing the backend
// asks for.
func TestNoAllowListRefusesEverything(t *testing.T) {
	p := newPeer(t)
	startAgent(t, testConfig(p))
	waitFor(t, p, "the session", func() bool { return p.Connected("web-7f9c") })
	marker := filepath.Join(t.TempDir(), "owned")
	c := request(t, p, "anything", "touch "+marker)
	if c.Status != 3 || !strings.Contains(c.Output, "no sensu.allow_list is configured") {
		t.Errorf("status %d output %q", c.Status, c.Output)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran")
	}
}

func TestTokensBounded(t *testing.T) {
	data := map[string]any{"name": "web", "labels": map[string]string{"app": "shop", "dash-key": "v"}}
	for cmd, want := range map[string]string{
		`echo {{ .name }} {{ .labels.app }}`:                   "echo web shop",
		`echo {{ .labels.nope | default "80" }}`:               "echo 80",
		`echo {{ index .labels "dash-key" }}`:                  "echo v",
		`echo {{ default "x" .labels.app }} {{/* comment */}}`: "echo shop ",
	} {
		if got, err := expandTokens(cmd, data); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", cmd, got, err, want)
		}
	}
	for _, cmd := range []string{
		`{{range 20000000}}xxxxxxxxxx{{end}}`,
		`{{printf "%0999999999d" 1}}`,
		`{{if .name}}x{{end}}`,
		`{{with .name}}x{{end}}`,
		`{{define "a"}}x{{end}}{{template "a"}}`,
		`{{$x := 1}}{{$x}}`,
		`{{ .nope }}`,
	} {
		if got, err := expandTokens(cmd, data); err == nil {
			t.Errorf("%s expanded to %d bytes, want an error", cmd, len(got))
		}
	}
	long := map[string]any{"v": strings.Repeat("x", 40000)}
	if _, err := expandTokens(`{{.v}}{{.v}}`, long); err == nil || !strings.Contains(err.Error(), "grows past") {
		t.Errorf("output past the bound: %v", err)
	}
}

// TestTokenBombAllocatesNothing: the 40-byte range bomb is refused before
// it runs (it would write 200 MB).
func TestTokenBombAllocatesNothing(t *testing.T) {
	allocs := testing.AllocsPerRun(3, func() {
		expandTokens(`{{range 20000000}}xxxxxxxxxx{{end}}`, map[string]any{})
	})
	if allocs > 1000 {
		t.Errorf("%.0f allocations to refuse the bomb", allocs)
	}
}

func FuzzExpandTokens(f *testing.F) {
	for _, s := range []string{`echo {{ .name }}`, `{{range 20000000}}xxxxxxxxxx{{end}}`, `{{ .labels.x | default "1" }}`,
		`{{ index .labels "a" }}`, `{{printf "%d" 1}}`, `{{`, `}}{{`, `{{ .system.hostname }}`} {
		f.Add(s)
	}
	data := map[string]any{"name": "web", "labels": map[string]string{"a": "b"}, "system": map[string]any{"hostname": "h"}}
	f.Fuzz(func(t *testing.T, cmd string) {
		out, err := expandTokens(cmd, data)
		if err == nil && len(out) > maxCommandBytes {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}

func FuzzMatchAllowList(f *testing.F) {
	f.Add("/bin/echo", "hello", "/bin/echo hello")
	f.Add("/bin/echo", "", "/bin/echo; rm -rf /")
	f.Fuzz(func(t *testing.T, exec, arg, command string) {
		if exec == "" {
			return
		}
		r, ok := matchAllowList([]configs.AllowRule{{Exec: exec, Args: []string{arg}}}, command)
		if ok && !strings.Contains(command, r.Exec) {
			t.Fatalf("%q matched without its exec", command)
		}
	})
}

func FuzzBackendMessage(f *testing.F) {
	f.Add([]byte("check_request\n{\"config\":{\"metadata\":{\"name\":\"c\"},\"command\":\"true\"},\"issued\":1}"))
	f.Add([]byte("entity_config\n{}"))
	f.Add([]byte("no newline"))
	f.Add([]byte("check_request\n{\"config\":null}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, err := decodeMessage(b)
		if err != nil {
			return
		}
		if typ == msgCheckRequest {
			var req checkRequest
			if json.Unmarshal(payload, &req) == nil && req.Config != nil {
				if _, err := json.Marshal(req.Config); err != nil {
					t.Fatalf("a decoded check does not encode back: %v", err)
				}
			}
		}
	})
}
