package configs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// AllowRule is one entry of a Sensu agent allow list, in sensu-agent's own
// format (--allow-list, a YAML or JSON file): the command the backend may
// have the agent run, its arguments, optionally the SHA-512 of the
// executable, and whether the check's env_vars are passed.
type AllowRule struct {
	Exec      string   `yaml:"exec"`
	Args      []string `yaml:"args"`
	Sha512    string   `yaml:"sha512"`
	EnableEnv bool     `yaml:"enable_env"`
	// Line is where the entry starts in its file.
	Line int `yaml:"-"`
}

// maxAllowListBytes bounds the file read: an allow list is a few lines per
// command.
const maxAllowListBytes = 1 << 20

// ParseAllowList reads an allow list. YAML is a superset of JSON, so one
// parser reads both of sensu-agent's formats. Entries are validated as
// sensu-agent does (exec and args must not be empty); a sha512 must be 128
// hex digits. Errors name the entry's line.
func ParseAllowList(r io.Reader) ([]AllowRule, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxAllowListBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAllowListBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxAllowListBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 {
		return nil, errors.New("empty: list the commands the backend may run")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("line %d: expected a list of {exec, args, sha512, enable_env}", root.Line)
	}
	rules := make([]AllowRule, 0, len(root.Content))
	for _, item := range root.Content {
		var r AllowRule
		if err := item.Decode(&r); err != nil {
			return nil, fmt.Errorf("line %d: %w", item.Line, err)
		}
		r.Line = item.Line
		switch {
		case r.Exec == "":
			return nil, fmt.Errorf("line %d: exec cannot be empty", item.Line)
		case len(r.Args) == 0:
			return nil, fmt.Errorf("line %d: args cannot be empty (write [\"\"] for a command without arguments)", item.Line)
		case r.Sha512 != "":
			if d, err := hex.DecodeString(r.Sha512); err != nil || len(d) != 64 {
				return nil, fmt.Errorf("line %d: sha512 is not 128 hex digits", item.Line)
			}
		}
		rules = append(rules, r)
	}
	return rules, nil
}
