package configs

import (
	"strings"
	"testing"
)

// TestControlSocket: a control command reads only what names the socket,
// so an unrelated problem does not stop it, while one that keeps the
// socket from being known is an error, never a silent default.
func TestControlSocket(t *testing.T) {
	good := "[control]\nsocket = \"/a/control.sock\"\n[programs.web]\nbogus = 1\n"
	for _, c := range []struct {
		name, body string
		env        []string
		want, err  string
	}{
		{"unrelated problem", good, nil, "/a/control.sock", ""},
		{"env overrides", good, []string{"STEWARD_CONTROL_SOCKET=/b.sock"}, "/b.sock", ""},
		{"env over a broken file", "[control\n", []string{"STEWARD_CONTROL_SOCKET=/b.sock"}, "/b.sock", ""},
		{"none set", "[programs.web]\ncommand = 7\n", nil, "", ""},
		{"syntax", "[control]\nsocket = \"/a\n", nil, "", ":2: TOML syntax"},
		{"wrong type", "[control]\nsocket = 7\n", nil, "", ":2: control.socket: expected a string"},
		{"not a table", "control = 7\n", nil, "", ":1: control: expected a table"},
		{"relative", "[control]\nsocket = \"c.sock\"\n", nil, "", ":2: control.socket: \"c.sock\" is not an absolute path"},
		{"relative env", good, []string{"STEWARD_CONTROL_SOCKET=c.sock"}, "", "STEWARD_CONTROL_SOCKET: control.socket: \"c.sock\" is not an absolute path"},
	} {
		path := write(t, c.body)
		got, err := ControlSocket(path, c.env)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %q, %v; want an error with %q", c.name, got, err, c.err)
		}
	}
	if _, err := ControlSocket("/no/such/steward.toml", nil); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing file: %v", err)
	}
}
