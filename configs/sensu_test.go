package configs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSensuFromEnvironment(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("the-key\n"), 0o600)
	cfg, err := Load(Options{Command: []string{"app"}, Environ: []string{
		"STEWARD_SENSU_BACKEND_URL=ws://a:8081, wss://b:8081",
		"STEWARD_SENSU_PASSWORD=pw",
		"STEWARD_SENSU_API_URL=http://a:8080",
		"STEWARD_SENSU_API_KEY_FILE=" + keyFile,
		"STEWARD_SENSU_SUBSCRIPTIONS=web,linux",
		"STEWARD_SENSU_KEEPALIVE_INTERVAL=10s",
		"STEWARD_SENSU_REDACT=secret,ec2_access_key",
		"STEWARD_HOST=host-1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sensu
	if !slices.Equal(s.BackendURLs, []string{"ws://a:8081", "wss://b:8081"}) || s.Password != "pw" || s.APIKey != "the-key" ||
		!slices.Equal(s.Subscriptions, []string{"web", "linux"}) || s.KeepaliveInterval.D() != 10*time.Second ||
		s.EntityName != "host-1" || s.Namespace != "default" || !s.Deregister || s.User != "agent" ||
		!slices.Equal(s.Redact, []string{"secret", "ec2_access_key"}) || s.EventSpacing.D() != time.Second || s.AllowAnyCommand {
		t.Fatalf("%+v", s)
	}
	for _, name := range []string{"STEWARD_SENSU_PASSWORD", "STEWARD_SENSU_API_KEY"} {
		if !slices.Contains(SecretEnvNames(), name) {
			t.Errorf("%s is not secret", name)
		}
	}
}

func TestSensuProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.toml")
	os.WriteFile(path, []byte(`[sensu]
backend_url = ["http://agent:hunter2@sensu:8081"]
api_key = "k"
keepalive_interval = "30s"
keepalive_warning_timeout = "20s"
entity_name = "bad name"
[checks.web]
http = "http://127.0.0.1/"
expect_status = "300-200"
expect_body = "("
[checks.program-x]
tcp = "127.0.0.1:1"
[programs.app]
main = true
command = ["app"]
`), 0o644)
	_, err := Load(Options{Path: path, Environ: []string{"STEWARD_SENSU_API_KEY_FILE=/nonexistent/key"}})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`:2: sensu.backend_url: "http://agent:xxxxx@sensu:8081" is not a ws:// or wss:// URL`,
		"sensu.api_url: is needed with api_key",
		"sensu.keepalive_warning_timeout: must be longer than keepalive_interval",
		`sensu.entity_name: "bad name" is not a valid Sensu name`,
		`checks.web.expect_status: bad HTTP status range "300-200"`,
		"checks.web.expect_body: bad regexp",
		`checks.program-x: names starting with "program-"`,
		"STEWARD_SENSU_API_KEY_FILE: sensu.api_key: cannot read the secret",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Error("a password was printed")
	}
}
