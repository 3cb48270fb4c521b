package sensu

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/stewardhq/steward/configs"
)

// matchAllowList finds the rule that allows command, with sensu-agent's
// own matching rule (agent/allow_list.go): the command must contain the
// rule's exec, and once every occurrence of exec and of each of the rule's
// args is removed, nothing but blanks may remain.
func matchAllowList(rules []configs.AllowRule, command string) (configs.AllowRule, bool) {
	for _, r := range rules {
		if !strings.Contains(command, r.Exec) {
			continue
		}
		remaining := strings.ReplaceAll(command, r.Exec, "")
		for _, arg := range r.Args {
			if arg != "" {
				remaining = strings.ReplaceAll(remaining, arg, "")
			}
		}
		if strings.TrimSpace(remaining) == "" {
			return r, true
		}
	}
	return configs.AllowRule{}, false
}

// verifySha512 checks the executable a rule names against its checksum,
// found as the shell would find it (through PATH when the name has no
// slash).
func verifySha512(r configs.AllowRule) error {
	if r.Sha512 == "" {
		return nil
	}
	path, err := exec.LookPath(r.Exec)
	if err != nil {
		return fmt.Errorf("cannot find %s to verify its sha512: %w", r.Exec, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s to verify its sha512: %w", path, err)
	}
	defer f.Close()
	h := sha512.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("cannot read %s to verify its sha512: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, r.Sha512) {
		return fmt.Errorf("the sha512 of %s is %s…, not the allow list's %s…", path, got[:16], r.Sha512[:min(16, len(r.Sha512))])
	}
	return nil
}
