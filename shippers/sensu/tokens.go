package sensu

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// Token substitution runs text/template over a command the backend sent,
// so it is bounded like any input from a peer. A template may only read
// values: fields ({{ .labels.x }}), `default` and `index`, literals. No
// range, if, with, define or template, and none of text/template's other
// functions (printf "%0999999999d" allocates what it is told): a 40-byte
// {{range 20000000}}xxxxxxxxxx{{end}} would otherwise make PID 1 write
// 200 MB. Without loops the work is linear in the command's length, and the
// output is cut off at maxCommandBytes in any case.

// maxCommandBytes bounds a command after substitution.
const maxCommandBytes = 64 << 10

var errTokenOutput = fmt.Errorf("the command grows past %d bytes", maxCommandBytes)

var tokenFuncs = template.FuncMap{"default": tokenDefault}

// expandTokens substitutes the tokens of command from data.
func expandTokens(command string, data map[string]any) (string, error) {
	if len(command) > maxCommandBytes {
		return "", fmt.Errorf("steward: check command longer than %d bytes", maxCommandBytes)
	}
	t, err := template.New("command").Funcs(tokenFuncs).Option("missingkey=default").Parse(command)
	if err != nil {
		return "", fmt.Errorf("steward: bad token in check command: %w", err)
	}
	if len(t.Templates()) > 1 {
		return "", errors.New("steward: check command tokens may not define templates")
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return "", nil
	}
	if err := onlyValues(t.Tree.Root); err != nil {
		return "", fmt.Errorf("steward: check command tokens: %w", err)
	}
	var b limitedBuilder
	if err := t.Execute(&b, data); err != nil {
		if errors.Is(err, errTokenOutput) {
			return "", fmt.Errorf("steward: substituting tokens: %w", errTokenOutput)
		}
		return "", fmt.Errorf("steward: substituting tokens: %w", err)
	}
	if strings.Contains(b.String(), "<no value>") {
		return "", fmt.Errorf("steward: check command has unmatched tokens: %s", command)
	}
	return b.String(), nil
}

// onlyValues accepts a template tree that only reads values.
func onlyValues(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			if err := onlyValues(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.TextNode, *parse.CommentNode, *parse.FieldNode, *parse.DotNode, *parse.StringNode,
		*parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return nil
	case *parse.VariableNode:
		if len(n.Ident) > 0 && n.Ident[0] != "$" {
			return fmt.Errorf("variables are not allowed (%s)", n)
		}
		return nil
	case *parse.ActionNode:
		return onlyValues(n.Pipe)
	case *parse.PipeNode:
		if len(n.Decl) > 0 || n.IsAssign {
			return fmt.Errorf("variables are not allowed (%s)", n)
		}
		for _, c := range n.Cmds {
			if err := onlyValues(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.CommandNode:
		for _, c := range n.Args {
			if err := onlyValues(c); err != nil {
				return err
			}
		}
		return nil
	case *parse.ChainNode:
		return onlyValues(n.Node)
	case *parse.IdentifierNode:
		if n.Ident == "default" || n.Ident == "index" {
			return nil
		}
		return fmt.Errorf("function %q is not allowed (only default and index)", n.Ident)
	default:
		return fmt.Errorf("%q is not allowed: tokens only read values", n.String())
	}
}

// limitedBuilder fails a write that would pass maxCommandBytes, which ends
// the template's execution there.
type limitedBuilder struct{ strings.Builder }

func (b *limitedBuilder) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxCommandBytes {
		return 0, errTokenOutput
	}
	return b.Builder.Write(p)
}

// tokenDefault is sensu's `default` token function: the value, or def when
// the value is missing or empty.
func tokenDefault(def any, value ...any) any {
	if len(value) == 0 || value[0] == nil {
		return def
	}
	if s, ok := value[0].(string); ok && s == "" {
		return def
	}
	return value[0]
}
