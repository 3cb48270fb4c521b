package configs

import (
	"os"
	"path/filepath"
	"testing"
)

// load writes toml to a file and loads it with env, a command line giving
// the main program its command when the config has none.
func load(t *testing.T, toml string, env ...string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "steward.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(Options{Path: path, Environ: env, Command: []string{"app"}})
}
