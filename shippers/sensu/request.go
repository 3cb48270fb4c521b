package sensu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/stewardhq/steward/checks"
)

// handleCheckRequest runs a check the backend published to one of the
// entity's subscriptions and queues its result, as sensu-agent does: the
// command through a shell, with the check's env_vars, its timeout, the event
// on stdin when asked, and entity tokens ({{ .name }}, {{ .labels.x }})
// substituted. A check already running is not started twice. Runtime
// assets and hooks are not supported: commands must be in the image.
func (a *Agent) handleCheckRequest(payload []byte) {
	var req checkRequest
	if err := json.Unmarshal(payload, &req); err != nil || req.Config == nil || req.Config.Metadata.Name == "" {
		a.log.Warn("sensu: bad check request", "err", err)
		return
	}
	c := req.Config
	name := c.Metadata.Name
	a.inFlightMu.Lock()
	busy, full := a.inFlight[name], len(a.inFlight) >= maxInFlightChecks
	if !busy && !full {
		a.inFlight[name] = true
	}
	a.inFlightMu.Unlock()
	switch {
	case busy:
		a.log.Warn("sensu: check still running, request skipped", "check", name)
		return
	case full:
		a.answer(c, req.Issued, checks.Result{Status: checks.Unknown, Executed: time.Now(),
			Output: fmt.Sprintf("steward: %d checks running already, %s not started", maxInFlightChecks, name)})
		return
	}
	a.requests.Add(1)
	go func() {
		defer func() {
			a.inFlightMu.Lock()
			delete(a.inFlight, name)
			a.inFlightMu.Unlock()
		}()
		a.answer(c, req.Issued, a.execute(c))
	}()
}

func (a *Agent) execute(c *check) checks.Result {
	command, err := a.substitute(c.Command)
	if err != nil {
		return checks.Result{Status: checks.Unknown, Executed: time.Now(), Output: err.Error()}
	}
	c.Command = command
	limit := a.cfg.MaxOutputBytes
	if c.MaxOutputSize > 0 && int(c.MaxOutputSize) < limit {
		limit = int(c.MaxOutputSize)
	}
	spec := checks.CommandSpec{Argv: []string{"/bin/sh", "-c", command}, ExtraEnv: c.EnvVars, OutputLimit: limit}
	if c.Stdin {
		spec.Stdin, _ = json.Marshal(a.newEvent(c))
	}
	probe := &checks.Command{Spec: spec, Timeout: time.Duration(c.Timeout) * time.Second, Executor: a.ex}
	return probe.Probe(a.execCtx)
}

// answer queues the result of a requested check.
func (a *Agent) answer(c *check, issued int64, r checks.Result) {
	c.Executed, c.Issued = r.Executed.Unix(), issued
	c.Duration, c.Output, c.Status = r.Duration.Seconds(), r.Output, uint32(r.Status)
	if c.Handlers == nil {
		c.Handlers = []string{}
	}
	if c.Subscriptions == nil {
		c.Subscriptions = []string{}
	}
	if c.Metadata.Namespace == "" {
		c.Metadata.Namespace = a.cfg.Namespace
	}
	a.enqueue(c)
}

// substitute replaces entity tokens in a check's command, as sensu-agent
// does with Go templates over the entity: {{ .name }}, {{ .namespace }},
// {{ .labels.KEY }}, {{ .annotations.KEY }}, {{ .system.hostname }}, with
// `default` for missing values. A token that matches nothing is an error.
func (a *Agent) substitute(command string) (string, error) {
	if !strings.Contains(command, "{{") {
		return command, nil
	}
	e := a.entityTemplate
	data := map[string]any{
		"name": e.Metadata.Name, "namespace": e.Metadata.Namespace, "entity_class": e.EntityClass,
		"labels": e.Metadata.Labels, "annotations": e.Metadata.Annotations,
		"subscriptions": e.Subscriptions, "user": e.User, "deregister": e.Deregister,
		"system": map[string]any{"hostname": e.System.Hostname, "os": e.System.OS, "platform": e.System.Platform,
			"platform_family": e.System.PlatformFamily, "platform_version": e.System.PlatformVersion, "arch": e.System.Arch},
	}
	t, err := template.New("command").Funcs(template.FuncMap{"default": tokenDefault}).Parse(command)
	if err != nil {
		return "", fmt.Errorf("steward: bad token in check command: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("steward: substituting tokens: %w", err)
	}
	if strings.Contains(b.String(), "<no value>") {
		return "", fmt.Errorf("steward: check command has unmatched tokens: %s", command)
	}
	return b.String(), nil
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
