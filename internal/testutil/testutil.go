// Package testutil holds what the tests of several packages need alike: a
// buffer a test reads while another goroutine writes it, a condition wait
// that only guards against a hang, a free loopback port, and a config
// loaded the way steward loads it. Only tests (and bench tools) import it.
package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/configs"
)

// LockedBuffer is a bytes.Buffer safe for one writer (a child's output, a
// logger) and a reader (the test) at once.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Bytes is a copy of everything written so far.
func (b *LockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// Count is how often s was written.
func (b *LockedBuffer) Count(s string) int { return strings.Count(b.String(), s) }

// HangGuard bounds every wait of a test. It is no timing assertion: a
// condition that holds at all holds long before it, at any machine load.
const HangGuard = 5 * time.Minute

// Eventually polls cond until it holds, failing the test after HangGuard.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(HangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LoadConfig writes toml to a file and loads it the way steward does, with
// command as the command line's program, if any.
func LoadConfig(t testing.TB, toml string, command ...string) *configs.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "steward.toml")
	if err := os.WriteFile(path, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := configs.Load(configs.Options{Path: path, Command: command})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
