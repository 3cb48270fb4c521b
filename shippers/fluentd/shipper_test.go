package fluentd

import (
	"strconv"
	"testing"

	"github.com/stewardhq/steward/shippers/fluentd/fluentdtest"
)

func TestDeliversEveryLine(t *testing.T) {
	c := newCollector()
	p := listen(t, fluentdtest.Config{OnEvent: c.onEvent(false)})
	cfg := loadConfig(t, `
[steward]
app = "shop"
version = "1.2.3"
[fluentd]
address = "`+p.Addr()+`"
spool_dir = "`+t.TempDir()+`"
`)
	h := startShipper(t, cfg)
	h.publish("web", "stdout", "line ", 0, 10000)
	h.close()
	for i := range 10000 {
		if n := c.has("line " + strconv.Itoa(i)); n != 1 {
			t.Fatalf("line %d received %d times", i, n)
		}
	}
	st := h.s.Stats()
	if st.Sent != 10000 || st.Dropped != 0 || st.Resent != 0 {
		t.Fatalf("stats %+v", st)
	}
}
