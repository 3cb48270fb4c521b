package control

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestSocketDirOfAnotherUserRefused: a socket directory made first by
// another user (the /tmp/steward-<uid> fallback in a shared /tmp), one
// others can write, or a symbolic link is refused by the server, and a
// socket found there (a fake steward's) is passed over by clients.
func TestSocketDirOfAnotherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory owned by another user")
	}
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777) // a shared /tmp
	taken := filepath.Join(tmp, "steward-taken")
	os.Mkdir(taken, 0o777)
	os.Chmod(taken, 0o777)
	if err := os.Chown(taken, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(tmp, "writable")
	os.Mkdir(writable, 0o700)
	os.Chmod(writable, 0o770)
	link := filepath.Join(tmp, "link")
	mine := filepath.Join(tmp, "mine")
	os.Mkdir(mine, 0o700)
	os.Symlink(mine, link)

	for _, dir := range []string{taken, writable, link} {
		s := NewServer(slog.New(slog.DiscardHandler))
		err := s.ListenFirst([]string{filepath.Join(dir, "control.sock")})
		if !errors.Is(err, ErrUnsafeDir) {
			t.Errorf("%s: listened (%v)", dir, err)
			s.Close(context.Background())
		}
	}

	// A fake steward's socket in the taken directory: clients pass it over
	// for the next path, and say why when it is the only one.
	fake := filepath.Join(taken, "control.sock")
	ln, err := net.Listen("unix", fake)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p, err := FindSocket([]string{fake}); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("FindSocket took %s (%v)", p, err)
	}
	good := NewServer(slog.New(slog.DiscardHandler))
	goodPath := filepath.Join(mine, "control.sock")
	if err := good.Listen(goodPath); err != nil {
		t.Fatal(err)
	}
	defer good.Close(context.Background())
	if p, err := FindSocket([]string{fake, goodPath}); p != goodPath {
		t.Errorf("FindSocket = %s (%v), want %s", p, err, goodPath)
	}
}
