package checks

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ready")
	p := &File{Path: path}
	if r := p.Probe(context.Background()); r.Status != Critical {
		t.Fatalf("missing: %v", r.Status)
	}
	os.WriteFile(path, nil, 0o644)
	if r := p.Probe(context.Background()); r.Status != OK {
		t.Fatalf("present: %v", r.Status)
	}
}
