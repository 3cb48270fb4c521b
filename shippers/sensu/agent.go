// Package sensu makes steward a Sensu Go 6.x agent: it connects to the
// backend over the agent WebSocket transport, registers the container as an
// agent entity through keepalives, sends check results and program events
// as Sensu events, runs the checks the backend publishes to the entity's
// subscriptions, and deletes the entity when the container stops.
package sensu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/stewardhq/steward/checks"
	"github.com/stewardhq/steward/configs"
	"github.com/stewardhq/steward/internal/backoff"
)

// Identity is who the agent reports as.
type Identity struct {
	App, Version string
	// Hostname is the entity's system hostname.
	Hostname string
	// Root is the filesystem root read for system information ("/").
	Root string
	// StewardVersion is steward's own version (sensu_agent_version and the
	// User-Agent), not the app's.
	StewardVersion string
	// Getenv reads steward's environment for system facts (os.Getenv).
	Getenv func(string) string
}

// Transport timings, those of sensu-agent 6.x: a ping every 30 s and the
// connection given up when nothing came back for 45 s; reconnects start
// after 1 s and back off to 2 minutes.
const (
	heartbeatInterval = 30 * time.Second
	heartbeatTimeout  = 45 * time.Second
	handshakeTimeout  = 15 * time.Second
	writeTimeout      = 10 * time.Second
	retryMin          = time.Second
	retryMax          = 2 * time.Minute
	maxReadBytes      = 8 << 20
	// maxInFlightChecks bounds the backend's check requests running at
	// once; more are answered UNKNOWN.
	maxInFlightChecks = 16
	// deregistrationCheck is the check name of the deregistration event,
	// as the backend's own deregistration uses it.
	deregistrationCheck = "deregistration"
	// managedByLabel marks an agent-managed entity (core/v2 ManagedByLabel).
	managedByLabel = "sensu.io/managed_by"
)

// Stats are the agent's counters, for logs and metrics.
type Stats struct {
	Connected  bool
	Backend    string // URL of the current connection, password removed
	Sent       uint64 // messages written to the backend
	Dropped    uint64 // events dropped because the queue was full
	Queued     int    // events waiting
	Reconnects uint64 // connections made after the first
	Requests   uint64 // check requests executed
	Refused    uint64 // check requests whose command the allow list refused
	Coalesced  uint64 // queued results replaced by a newer one of the same status
}

// Agent is steward's Sensu agent.
type Agent struct {
	cfg    *configs.Sensu
	id     Identity
	ex     checks.Executor
	log    *slog.Logger
	header http.Header
	dialer *websocket.Dialer
	api    *http.Client

	entityTemplate entity
	queue          *queue
	// backends are the backend URLs in this agent's own random order, as
	// sensu-agent shuffles them: a fleet spreads over a cluster.
	backends []string
	pace     *pacer

	seqMu sync.Mutex
	seq   map[string]int64

	inFlightMu sync.Mutex
	inFlight   map[string]bool

	runCtx    context.Context
	runCancel context.CancelFunc
	execCtx   context.Context
	execStop  context.CancelFunc
	done      chan struct{}
	finishing chan struct{}
	// finishBy is the flush deadline (unix nanoseconds) once Close began.
	finishBy  atomic.Int64
	closeOnce sync.Once

	connected  atomic.Bool
	backend    atomic.Value // string
	sent       atomic.Uint64
	reconnects atomic.Uint64
	requests   atomic.Uint64
	refused    atomic.Uint64

	lastDialErr string
	deregQueued bool // the run goroutine's
	// sending is set while flush holds a message taken from the queue.
	sending atomic.Bool
}

// New prepares the agent; Start connects it.
func New(cfg *configs.Sensu, id Identity, ex checks.Executor, log *slog.Logger) (*Agent, error) {
	tlsConfig := &tls.Config{InsecureSkipVerify: cfg.InsecureSkipTLSVerify} //nolint:gosec // the user's choice, documented
	if cfg.TrustedCAFile != "" {
		pem, err := os.ReadFile(cfg.TrustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("sensu: trusted CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sensu: trusted CA file %s holds no PEM certificate", cfg.TrustedCAFile)
		}
		tlsConfig.RootCAs = pool
	}
	if id.Root == "" {
		id.Root = "/"
	}
	if id.Getenv == nil {
		id.Getenv = os.Getenv
	}
	if id.StewardVersion == "" {
		id.StewardVersion = "devel"
	}
	a := &Agent{
		cfg: cfg, id: id, ex: ex, log: log.With("component", "sensu"),
		dialer: &websocket.Dialer{HandshakeTimeout: handshakeTimeout, TLSClientConfig: tlsConfig,
			Proxy: http.ProxyFromEnvironment, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10},
		api:       &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment}},
		seq:       map[string]int64{},
		inFlight:  map[string]bool{},
		done:      make(chan struct{}),
		finishing: make(chan struct{}),
	}
	a.backends = slices.Clone(cfg.BackendURLs)
	rand.Shuffle(len(a.backends), func(i, j int) { a.backends[i], a.backends[j] = a.backends[j], a.backends[i] })
	a.queue = newQueue(cfg.QueueSize, a.log)
	a.pace = newPacer(cfg.EventSpacing.D(), cfg.APIKey != "")
	a.header = a.transportHeader()
	a.entityTemplate = a.newEntity()
	a.backend.Store("")
	return a, nil
}

// transportHeader is what the agent sends when it connects, as sensu-agent
// does with password authentication. No Accept header: the backend then
// speaks JSON rather than protobuf.
func (a *Agent) transportHeader() http.Header {
	h := http.Header{}
	h.Set("Sensu-Namespace", a.cfg.Namespace)
	h.Set("Sensu-AgentName", a.cfg.EntityName)
	h.Set("Sensu-User", a.cfg.User)
	h.Set("Sensu-Subscriptions", strings.Join(a.cfg.Subscriptions, ","))
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.cfg.User+":"+a.cfg.Password)))
	h.Set("User-Agent", a.userAgent())
	return h
}

func (a *Agent) newEntity() entity {
	labels := map[string]string{"app": a.id.App, "version": a.id.Version}
	maps.Copy(labels, a.cfg.Labels)
	if a.cfg.AgentManagedEntity {
		labels[managedByLabel] = "sensu-agent"
	}
	subs := slices.Clone(a.cfg.Subscriptions)
	if own := "entity:" + a.cfg.EntityName; !slices.Contains(subs, own) {
		subs = append(subs, own)
	}
	meta := objectMeta{Name: a.cfg.EntityName, Namespace: a.cfg.Namespace, Labels: labels, Annotations: a.cfg.Annotations}
	if a.cfg.AgentManagedEntity {
		meta.CreatedBy = a.cfg.User
	}
	return entity{
		EntityClass:       "agent",
		System:            systemInfo(a.id.Root, a.id.Hostname, a.id.Getenv),
		Subscriptions:     subs,
		Deregister:        a.cfg.Deregister,
		Deregistration:    deregistration{Handler: a.cfg.DeregistrationHandler},
		User:              a.cfg.User,
		Metadata:          meta,
		SensuAgentVersion: a.userAgent(),
		Redact:            a.cfg.Redact,
		KeepaliveHandlers: a.cfg.KeepaliveHandlers,
	}
}

func (a *Agent) entity() *entity {
	e := a.entityTemplate
	e.LastSeen = time.Now().Unix()
	return &e
}

// Stats returns the agent's counters.
func (a *Agent) Stats() Stats {
	return Stats{Connected: a.connected.Load(), Backend: a.backend.Load().(string), Sent: a.sent.Load(),
		Dropped: a.queue.dropped.Total(), Queued: a.queue.len(), Reconnects: a.reconnects.Load(), Requests: a.requests.Load(),
		Refused: a.refused.Load(), Coalesced: a.queue.coalesced.Load()}
}

// Start connects to the backend in the background and keeps the
// connection, failing over between backends.
func (a *Agent) Start() {
	a.runCtx, a.runCancel = context.WithCancel(context.Background())
	a.execCtx, a.execStop = context.WithCancel(a.runCtx)
	go a.run()
}

// Publish queues a check report as an event. It never blocks.
func (a *Agent) Publish(r checks.Report) {
	handlers := r.Handlers
	if len(handlers) == 0 {
		handlers = a.cfg.Handlers
	}
	c := &check{
		Metadata: objectMeta{Name: r.Name, Namespace: a.cfg.Namespace},
		Command:  r.Target, Handlers: nonNil(handlers),
		Interval: uint32(r.Interval.Round(time.Second) / time.Second), Timeout: uint32(r.Timeout.Round(time.Second) / time.Second),
		Subscriptions: []string{}, EnvVars: []string{}, OutputMetricHandlers: []string{}, Pipelines: []any{},
		Executed: r.Executed.Unix(), Issued: r.Executed.Unix(), Duration: r.Duration.Seconds(),
		Output: r.Output, Status: uint32(r.Status), Scheduler: corev2MemoryScheduler,
		OutputMetricFormat: r.OutputMetricFormat,
	}
	a.enqueue(c, eventMetricsOf(r))
}

// eventMetricsOf is the metrics of a check with an output_metric_format
// for its event, nil for other checks. NaN and infinities, which JSON
// cannot carry, are left out.
func eventMetricsOf(r checks.Report) *eventMetrics {
	if r.OutputMetricFormat == "" {
		return nil
	}
	m := &eventMetrics{Handlers: []string{}, Points: []metricPoint{}}
	for _, p := range r.Metrics {
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			continue
		}
		mp := metricPoint{Name: p.Name, Value: p.Value, Timestamp: p.Timestamp, Tags: []metricTag{}}
		for _, t := range p.Tags {
			mp.Tags = append(mp.Tags, metricTag{Name: t.Name, Value: t.Value})
		}
		m.Points = append(m.Points, mp)
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// corev2MemoryScheduler is core/v2's MemoryScheduler.
const corev2MemoryScheduler = "memory"

func (a *Agent) enqueue(c *check, metrics *eventMetrics) {
	c.ProcessedBy = a.cfg.EntityName
	ev := a.newEvent(c)
	ev.Metrics = metrics
	b, err := json.Marshal(ev)
	if err != nil {
		a.log.Error("sensu: encoding event", "check", c.Metadata.Name, "err", err)
		return
	}
	a.queue.push(message{typ: msgEvent, payload: b, check: c.Metadata.Name, status: c.Status, id: ev.ID, seq: ev.Sequence})
}

// idle reports whether nothing waits to be sent and no result is in flight.
func (a *Agent) idle() bool {
	return !a.sending.Load() && a.queue.len() == 0 && a.pace.idle(time.Now())
}

func (a *Agent) newEvent(c *check) *event {
	a.seqMu.Lock()
	a.seq[c.Metadata.Name]++
	seq := a.seq[c.Metadata.Name]
	a.seqMu.Unlock()
	return &event{Timestamp: time.Now().Unix(), Entity: a.entity(), Check: c,
		Metadata: objectMeta{Namespace: a.cfg.Namespace}, ID: newUUID(), Sequence: seq, Pipelines: []any{}}
}

// keepalive is the keepalive event: an event whose check, named keepalive,
// carries the interval and the warning (timeout) and critical (ttl)
// timeouts after which the backend considers the entity gone.
func (a *Agent) keepalive(seq int64) message {
	c := &check{
		Metadata: objectMeta{Name: "keepalive", Namespace: a.cfg.Namespace},
		Handlers: nonNil(a.cfg.KeepaliveHandlers), Subscriptions: []string{}, EnvVars: []string{},
		OutputMetricHandlers: []string{}, Pipelines: []any{},
		Interval: uint32(a.cfg.KeepaliveInterval.D() / time.Second),
		Timeout:  uint32(a.cfg.KeepaliveWarningTimeout.D() / time.Second),
		Ttl:      int64(a.cfg.KeepaliveCriticalTimeout.D() / time.Second),
	}
	ev := &event{Timestamp: time.Now().Unix(), Entity: a.entity(), Check: c,
		Metadata: objectMeta{Namespace: a.cfg.Namespace}, ID: newUUID(), Sequence: seq, Pipelines: []any{}}
	b, _ := json.Marshal(ev)
	return message{typ: msgKeepalive, payload: b}
}

func (a *Agent) run() {
	defer close(a.done)
	delay := backoff.Backoff{Initial: retryMin, Max: retryMax}
	for i := 0; ; i++ {
		if a.runCtx.Err() != nil {
			return
		}
		finishing := a.isFinishing()
		u := a.backends[i%len(a.backends)]
		conn, err := a.dial(u)
		if err != nil {
			if finishing && i+1 >= len(a.backends) {
				a.log.Warn("sensu: no backend reachable to send the last events", "queued", a.queue.len())
				return
			}
			if !finishing && (i+1)%len(a.backends) == 0 {
				// Every backend failed once: wait before the next round.
				select {
				case <-time.After(delay.Next()):
				case <-a.finishing:
				case <-a.runCtx.Done():
					return
				}
			}
			continue
		}
		delay.Reset()
		if i > 0 {
			a.reconnects.Add(1)
		}
		finished := a.session(conn, u)
		if finished {
			return
		}
		i = -1 // start over with the first backend
	}
}

func (a *Agent) isFinishing() bool {
	select {
	case <-a.finishing:
		return true
	default:
		return false
	}
}

// dial connects to one backend. Handshake failures are logged once each,
// naming the cause, never the password.
func (a *Agent) dial(rawURL string) (*websocket.Conn, error) {
	shown := configs.RedactURL(rawURL)
	// gorilla/websocket stops a handshake at its timeout, not when the
	// context is cancelled; closing the raw connection at cancellation keeps
	// a hanging backend from holding up a stop.
	var mu sync.Mutex
	var raw net.Conn
	d := *a.dialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		mu.Lock()
		raw = c
		mu.Unlock()
		return c, err
	}
	stopAbort := context.AfterFunc(a.runCtx, func() {
		mu.Lock()
		if raw != nil {
			raw.Close()
		}
		mu.Unlock()
	})
	conn, resp, err := d.DialContext(a.runCtx, rawURL, a.header)
	stopAbort()
	if err != nil {
		msg := err.Error()
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			reason := strings.TrimSpace(string(body))
			switch resp.StatusCode {
			case http.StatusUnauthorized:
				msg = fmt.Sprintf("the backend refused the credentials of user %q (HTTP 401 %s): check sensu.user and STEWARD_SENSU_PASSWORD", a.cfg.User, reason)
			case http.StatusForbidden:
				msg = fmt.Sprintf("user %q may not create events in namespace %q (HTTP 403): check its role bindings", a.cfg.User, a.cfg.Namespace)
			default:
				msg = fmt.Sprintf("handshake refused with HTTP %d %s", resp.StatusCode, reason)
			}
		}
		msg = strings.ReplaceAll(msg, rawURL, shown)
		if a.cfg.Password != "" {
			msg = strings.ReplaceAll(msg, a.cfg.Password, "xxxxx")
		}
		if msg != a.lastDialErr {
			a.log.Error("sensu: cannot connect to the backend", "backend", shown, "err", msg)
			a.lastDialErr = msg
		} else {
			a.log.Debug("sensu: cannot connect to the backend", "backend", shown, "err", msg)
		}
		return nil, errors.New(msg)
	}
	a.lastDialErr = ""
	conn.SetReadLimit(maxReadBytes)
	a.log.Info("sensu: connected", "backend", shown, "entity", a.cfg.EntityName, "namespace", a.cfg.Namespace)
	return conn, nil
}

// session runs one connection: a keepalive at once and every interval,
// queued events as they come, check requests from the backend. It returns
// true once the agent has finished (last events sent, connection closed).
func (a *Agent) session(conn *websocket.Conn, rawURL string) (finished bool) {
	a.connected.Store(true)
	a.backend.Store(configs.RedactURL(rawURL))
	defer func() {
		a.connected.Store(false)
		a.backend.Store("")
	}()
	stop := context.AfterFunc(a.runCtx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	readErr := make(chan error, 1)
	_ = conn.SetReadDeadline(time.Now().Add(heartbeatTimeout))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(heartbeatTimeout)) })
	go a.receive(conn, readErr)

	var keepaliveSeq int64
	sendKeepalive := func() error {
		keepaliveSeq++
		return a.write(conn, a.keepalive(keepaliveSeq))
	}
	if err := sendKeepalive(); err != nil {
		a.log.Warn("sensu: connection lost", "err", err)
		return false
	}
	keepalives := time.NewTicker(a.cfg.KeepaliveInterval.D())
	defer keepalives.Stop()
	pings := time.NewTicker(heartbeatInterval)
	defer pings.Stop()
	// due wakes the loop when a check held back by the pacer may go.
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	finishing := a.finishing
	if a.isFinishing() {
		finishing = nil
		a.execStop()
	}
	for {
		if err := a.flush(conn); err != nil {
			a.log.Warn("sensu: connection lost", "err", err)
			return false
		}
		// Without an API key nothing is deleted at the end, so nothing
		// needs to be seen stored first.
		if finishing == nil && a.queue.len() == 0 && (!a.pace.confirm || a.pace.idle(time.Now())) {
			if done := a.finishOn(conn); done {
				return true
			}
			continue // the deregistration event was queued
		}
		if next := a.pace.nextDue(); !next.IsZero() {
			due.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-keepalives.C:
			if err := sendKeepalive(); err != nil {
				a.log.Warn("sensu: connection lost", "err", err)
				return false
			}
		case <-pings.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				a.log.Warn("sensu: connection lost", "err", err)
				return false
			}
		case <-a.queue.ready:
		case <-due.C:
		case err := <-readErr:
			if !a.isFinishing() {
				a.log.Warn("sensu: connection lost", "err", err)
			}
			return false
		case <-finishing:
			finishing = nil
			a.execStop()
		case <-a.runCtx.Done():
			return true
		}
	}
}

// finishOn runs once everything queued has been sent and stored: it queues
// the deregistration event the first time (reporting false: the session
// sends it, paced like any event, so that it is stored before the entity is
// deleted), then closes the connection and reports true.
func (a *Agent) finishOn(conn *websocket.Conn) bool {
	if h := a.cfg.DeregistrationHandler; h != "" && !a.deregQueued {
		a.deregQueued = true
		c := &check{Metadata: objectMeta{Name: deregistrationCheck, Namespace: a.cfg.Namespace},
			Handlers: []string{h}, Interval: 1, Subscriptions: []string{}, EnvVars: []string{},
			OutputMetricHandlers: []string{}, Pipelines: []any{},
			Executed: time.Now().Unix(), Output: "entity deregistered: the container stopped", Status: 1}
		a.enqueue(c, nil)
		return false
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "steward stopping"), a.deadline())
	return true
}

// flush sends every queued message the pacer lets go now.
func (a *Agent) flush(conn *websocket.Conn) error {
	for {
		now := time.Now()
		a.sending.Store(true)
		m, ok := a.queue.next(func(check string) bool { return a.pace.ready(check, now) })
		if !ok {
			a.sending.Store(false)
			return nil
		}
		if err := a.write(conn, m); err != nil {
			// Maybe sent, maybe not: sent again on the next connection
			// (at least once, as sensu-agent).
			a.queue.pushFront(m)
			a.sending.Store(false)
			return err
		}
		if m.check != "" {
			f := a.pace.sent(m.check, now)
			if a.pace.confirm {
				go a.confirmStored(a.runCtx, m, f)
			}
		}
		a.sending.Store(false)
	}
}

func (a *Agent) deadline() time.Time {
	d := time.Now().Add(writeTimeout)
	if by := a.finishBy.Load(); by != 0 && time.Unix(0, by).Before(d) {
		d = time.Unix(0, by)
	}
	return d
}

func (a *Agent) write(conn *websocket.Conn, m message) error {
	_ = conn.SetWriteDeadline(a.deadline())
	if err := conn.WriteMessage(websocket.BinaryMessage, encodeMessage(m.typ, m.payload)); err != nil {
		return fmt.Errorf("sensu: sending %s: %w", m.typ, err)
	}
	a.sent.Add(1)
	return nil
}

func (a *Agent) receive(conn *websocket.Conn, readErr chan<- error) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			readErr <- err
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(heartbeatTimeout))
		typ, payload, err := decodeMessage(data)
		if err != nil {
			a.log.Warn("sensu: bad message from the backend", "err", err)
			continue
		}
		switch typ {
		case msgCheckRequest:
			a.handleCheckRequest(payload)
		case msgEntityConfig:
			// The entity is steward's to manage (its config defines labels
			// and subscriptions), so the backend's copy is not applied.
			a.log.Debug("sensu: entity config from the backend ignored")
		default:
			a.log.Debug("sensu: message of unknown type ignored", "type", typ)
		}
	}
}

// Close sends the queued events and the deregistration event, closes the
// connection and, with an API key, deletes the entity, all within ctx.
func (a *Agent) Close(ctx context.Context) error {
	var err error
	a.closeOnce.Do(func() { err = a.close(ctx) })
	return err
}

func (a *Agent) close(ctx context.Context) error {
	if a.runCancel == nil {
		return nil // never started
	}
	start := time.Now()
	if dl, ok := ctx.Deadline(); ok {
		a.finishBy.Store(dl.UnixNano())
	}
	// Anything still running when the flush deadline passes is cut off.
	stop := context.AfterFunc(ctx, a.runCancel)
	defer stop()
	close(a.finishing)
	select {
	case <-a.done:
	case <-ctx.Done():
		<-a.done
	}
	var errs []error
	if n := a.queue.len(); n > 0 {
		errs = append(errs, fmt.Errorf("sensu: %d events not sent", n))
	}
	if a.cfg.APIKey != "" {
		if err := a.deleteEntity(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	a.runCancel()
	a.log.Info("sensu: agent stopped", "took", time.Since(start).Round(time.Millisecond),
		"sent", a.sent.Load(), "dropped", a.queue.dropped.Total())
	return errors.Join(errs...)
}
