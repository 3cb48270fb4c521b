package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/control/commands"
	"github.com/stewardhq/steward/supervisor"
)

// The reload command; the others are control/commands'. The client side is
// in ctl_client.go.

// reloadResult is the answer to `steward reload`.
type reloadResult struct {
	supervisor.ReloadResult
	// NotApplied lists config sections outside [programs] that changed
	// and take effect only when steward starts again.
	NotApplied []string `json:"not_applied,omitempty"`
}

// ctl serves reload; the program commands are control/commands'.
type ctl struct {
	w *wiring
	// reloading serialises reloads (a SIGHUP and `steward reload` at once).
	reloading sync.Mutex
}

// startCtl registers the control commands before the socket listens.
func startCtl(ctx context.Context, w *wiring) (component, error) {
	c := &ctl{w: w}
	w.reload = c.reload
	w.control.Handle("reload", func(ctx context.Context, _ json.RawMessage) (any, error) { return c.reload(ctx) })
	cmds := commands.Register(w.control, w.sup, commands.Options{LogLines: w.cfg.Control.LogLines,
		LogBufferLines: w.cfg.Steward.LogBufferLines, Log: w.log})
	w.sources.add(cmds.Metrics)
	return cmds, nil
}

// reload re-reads the configuration as steward was started with it. A
// config with problems is refused and the running one kept.
func (c *ctl) reload(ctx context.Context) (reloadResult, error) {
	c.reloading.Lock()
	defer c.reloading.Unlock()
	next, err := configs.Load(c.w.opts)
	if err != nil {
		var cerr *configs.Error
		if errors.As(err, &cerr) {
			lines := make([]string, len(cerr.Problems))
			for i, p := range cerr.Problems {
				lines[i] = p.String()
			}
			c.w.log.Error("reload refused: the configuration has problems; the running one is kept", "problems", lines)
			return reloadResult{}, fmt.Errorf("configuration refused, the running one is kept:\n%s", strings.Join(lines, "\n"))
		}
		return reloadResult{}, err
	}
	res := reloadResult{NotApplied: changedSections(c.w.cfg, next)}
	if res.ReloadResult, err = c.w.sup.Reload(ctx, next.ProgramList()); err != nil {
		return res, err
	}
	if len(res.NotApplied) > 0 {
		c.w.log.Warn("reload: these sections changed and take effect when steward starts again", "sections", res.NotApplied)
	}
	return res, nil
}

// changedSections names the top-level sections, other than the programs,
// that differ between two configs.
func changedSections(old, next *configs.Config) []string {
	var changed []string
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem()
	for i := range ov.NumField() {
		tag := ov.Type().Field(i).Tag.Get("toml")
		if tag == "" || tag == "-" || tag == "programs" {
			continue
		}
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			changed = append(changed, tag)
		}
	}
	// A program's metrics_url belongs to the metrics, which keep their
	// scrapes until steward starts again.
	for _, name := range slices.Sorted(maps.Keys(next.Programs)) {
		was := ""
		if p := old.Programs[name]; p != nil {
			was = p.MetricsURL
		}
		if was != next.Programs[name].MetricsURL {
			changed = append(changed, "programs."+name+".metrics_url")
		}
	}
	return changed
}
