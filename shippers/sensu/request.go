package sensu

import (
	"encoding/json"
	"fmt"
	"strings"
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
	env := c.EnvVars
	if !a.cfg.AllowAnyCommand {
		rule, ok := matchAllowList(a.cfg.AllowList, command)
		if !ok {
			return a.refuse(c, "is not on the allow list")
		}
		if err := verifySha512(rule); err != nil {
			return a.refuse(c, "is on the allow list, but "+err.Error())
		}
		if !rule.EnableEnv {
			// As sensu-agent: the check's env_vars only with enable_env.
			env = nil
		}
	}
	limit := a.cfg.MaxOutputBytes
	if c.MaxOutputSize > 0 && int(c.MaxOutputSize) < limit {
		limit = int(c.MaxOutputSize)
	}
	timeout := time.Duration(c.Timeout) * time.Second
	if timeout <= 0 || timeout > maxRequestTimeout {
		timeout = maxRequestTimeout
	}
	spec := checks.CommandSpec{Argv: []string{"/bin/sh", "-c", command}, ExtraEnv: env, OutputLimit: limit}
	if c.Stdin {
		spec.Stdin, _ = json.Marshal(a.newEvent(c))
	}
	probe := &checks.Command{Spec: spec, Timeout: timeout, Executor: a.ex}
	return probe.Probe(a.execCtx)
}

// maxRequestTimeout bounds a requested check that sets no timeout (0, which
// sensu-agent takes as none) or a longer one.
const maxRequestTimeout = 5 * time.Minute

// refuse answers a check request whose command may not run, as sensu-agent
// answers a check it cannot run: status 3 (UNKNOWN) and the reason.
func (a *Agent) refuse(c *check, why string) checks.Result {
	a.refused.Add(1)
	src := "sensu.allow_list " + a.cfg.AllowListFile
	if a.cfg.AllowListFile == "" {
		src = "no sensu.allow_list is configured"
	}
	a.log.Warn("sensu: check request refused: the command "+why, "check", c.Metadata.Name,
		"command", c.Command, "allow_list", a.cfg.AllowListFile)
	return checks.Result{Status: checks.Unknown, Executed: time.Now(),
		Output: fmt.Sprintf("steward refused to run check %s: command %q %s (%s)", c.Metadata.Name, c.Command, why, src)}
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
	a.enqueue(c, nil)
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
			"platform_family": e.System.PlatformFamily, "platform_version": e.System.PlatformVersion, "arch": e.System.Arch,
			"libc_type": e.System.LibCType, "vm_system": e.System.VMSystem, "vm_role": e.System.VMRole},
	}
	return expandTokens(command, data)
}
