package supervisor

import (
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testutil"
)

// TestPdeathParentAlreadyGone: a parent that died between steward's start
// and its PR_SET_PDEATHSIG would never send the signal; steward notices
// the new parent and sends it to itself. The helper (this test binary)
// is started by a shell that exits once the helper has started, and sets
// the signal only after that.
func TestPdeathParentAlreadyGone(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out, st := runChild(t, append(os.Environ(), "PDEATH_HELPER=1", "T="+dir),
		"sh", "-c", `"$0" -test.run='^TestPdeathHelper$' & while [ ! -e "$T/started" ]; do sleep 0.01; done`, self)
	if st.Code() != 0 {
		t.Fatalf("exit %d: %s", st.Code(), out)
	}
	testutil.Eventually(t, "the helper's result", func() bool {
		_, err := os.Stat(filepath.Join(dir, "result"))
		return err == nil
	})
	if b, _ := os.ReadFile(filepath.Join(dir, "result")); string(b) != "got the signal" {
		t.Fatalf("helper: %s", b)
	}
}

func TestPdeathHelper(t *testing.T) {
	dir := os.Getenv("T")
	if os.Getenv("PDEATH_HELPER") == "" || dir == "" {
		t.Skip("run by TestPdeathParentAlreadyGone")
	}
	result := func(s string) { os.WriteFile(filepath.Join(dir, "result"), []byte(s), 0o644) }
	os.WriteFile(filepath.Join(dir, "started"), nil, 0o644)
	for os.Getppid() == startPPID {
		time.Sleep(10 * time.Millisecond) // until the shell has exited
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	if err := setPdeathSignal(syscall.SIGUSR1); err != nil {
		result(err.Error())
		return
	}
	select {
	case <-c:
		result("got the signal")
	case <-time.After(time.Minute):
		result("no signal")
	}
}
