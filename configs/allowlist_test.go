package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseAllowList(t *testing.T) {
	sum := strings.Repeat("0a", 64)
	for _, doc := range []string{
		"- exec: /usr/bin/check\n  args: [\"-w\", \"80\"]\n  sha512: " + sum + "\n  enable_env: true\n  foo: bar\n",
		`[{"exec": "/usr/bin/check", "args": ["-w", "80"], "sha512": "` + sum + `", "enable_env": true}]`,
	} {
		rules, err := ParseAllowList(strings.NewReader(doc))
		if err != nil || len(rules) != 1 || rules[0].Exec != "/usr/bin/check" || len(rules[0].Args) != 2 ||
			rules[0].Sha512 != sum || !rules[0].EnableEnv || rules[0].Line != 1 {
			t.Errorf("%q: %+v %v", doc, rules, err)
		}
	}
	for doc, want := range map[string]string{
		"":                                       "empty",
		"exec: /x\n":                             "expected a list",
		"- exec: /a\n  args: [a]\n- args: [a]\n": "line 3: exec cannot be empty",
		"- exec: /a\n":                           "line 1: args cannot be empty",
		"- exec: /a\n  args: [a]\n  sha512: zz\n": "sha512 is not 128 hex digits",
		"- exec: [1]\n  args: [a]\n":              "line 1:",
		"- {":                                     "yaml",
	} {
		if _, err := ParseAllowList(strings.NewReader(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}

func TestSensuAllowListAndURLProblems(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "allow.yml")
	os.WriteFile(list, []byte("- exec: /bin/true\n  args: [\"\"]\n- exec: /bin/false\n"), 0o644)
	path := filepath.Join(dir, "s.toml")
	os.WriteFile(path, []byte(`[sensu]
backend_url = ["wss://agent:hunter2@sensu:8081"]
api_url = "http://admin:hunter3@sensu:8080"
allow_list = "`+list+`"
allow_any_command = true
[programs.app]
main = true
command = ["app"]
`), 0o644)
	_, err := Load(Options{Path: path})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		`:2: sensu.backend_url: "wss://agent:xxxxx@sensu:8081" carries a user and password`,
		`:3: sensu.api_url: "http://admin:xxxxx@sensu:8080" carries a user and password`,
		`:4: sensu.allow_list: ` + list + `: line 3: args cannot be empty`,
		`:5: sensu.allow_any_command: cannot be used with allow_list`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter") {
		t.Error("a password was printed")
	}
}

func FuzzParseAllowList(f *testing.F) {
	f.Add("- exec: /bin/true\n  args: [\"\"]\n")
	f.Add(`[{"exec":"/a","args":["b"],"sha512":"` + strings.Repeat("ff", 64) + `"}]`)
	f.Add("- {")
	f.Add("&a [*a, *a]")
	f.Fuzz(func(t *testing.T, doc string) {
		rules, err := ParseAllowList(strings.NewReader(doc))
		if err != nil {
			return
		}
		for _, r := range rules {
			if r.Exec == "" || len(r.Args) == 0 {
				t.Fatalf("invalid rule accepted: %+v", r)
			}
		}
	})
}
