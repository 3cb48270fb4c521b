package main

import (
	"testing"

	"github.com/stewardhq/steward/internal/carbontest"
)

// carbon is a real carbon-cache on loopback, with or without graphite-web
// (internal/carbontest, shared with the e2e tests), under the names these
// tests use.
type carbon struct {
	*carbontest.Carbon
	addr string
}

func wrapCarbon(c *carbontest.Carbon) *carbon { return &carbon{Carbon: c, addr: c.Addr} }

func startCarbon(t *testing.T) *carbon   { return wrapCarbon(carbontest.Start(t)) }
func startGraphite(t *testing.T) *carbon { return wrapCarbon(carbontest.StartGraphite(t)) }

func (c *carbon) start()                                            { c.Start() }
func (c *carbon) stop()                                             { c.Stop() }
func (c *carbon) last(series string) (float64, bool)                { return c.Last(series) }
func (c *carbon) stored(series string, from int64) int              { return c.Stored(series, from) }
func (c *carbon) want(what, series string, ok func(v float64) bool) { c.Want(what, series, ok) }
func (c *carbon) render(target string) map[string]float64           { return c.Render(target) }
func (c *carbon) wantRendered(what, target string, ok func(v float64) bool) {
	c.WantRendered(what, target, ok)
}

// point is one slot of a whisper file.
type point struct {
	t int64
	v *float64
}

func (c *carbon) fetch(series string, from int64) []point {
	var out []point
	for _, p := range c.Fetch(series, from) {
		out = append(out, point{p.T, p.V})
	}
	return out
}

func tagged(name string, tags ...string) string { return carbontest.Tagged(name, tags...) }

func eq(x float64) func(float64) bool      { return func(v float64) bool { return v == x } }
func atLeast(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
