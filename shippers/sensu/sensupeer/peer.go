// Package sensupeer is a test peer for steward's Sensu agent. No
// sensu-backend can be installed from the registries steward's tests may
// use, so this peer follows the Sensu Go 6.x agent transport and core/v2
// REST API as documented and as the backend (sensu-go backend/agentd,
// keepalived) behaves:
//
//   - agent endpoint "/": basic auth (401 "bad credentials"), headers
//     Sensu-AgentName, Sensu-Namespace, Sensu-User, Sensu-Subscriptions; the
//     upgrade answers Accept and Content-Type (JSON unless the agent asked
//     for protobuf); an entity_config message is sent first; messages are
//     binary frames "type\npayload";
//   - a keepalive registers the entity (class agent) if it does not exist,
//     and updates it when labelled sensu.io/managed_by=sensu-agent; with
//     deregister: true the entity and its events are deleted at the first
//     keepalive failure (no keepalive within the check's timeout);
//   - events are stored by entity and check the way eventd stores them:
//     asynchronously (the message bus hands each one to a worker), each a
//     read-modify-write of the check's stored event and its history with no
//     serialisation per check. The peer reads the stored event when an
//     event arrives and writes it back, with the new status appended to the
//     history, after a random delay below StoreLatency: two results of one
//     check that arrive closer than that overwrite each other (the later
//     write wins and the other is missing from the history), and an event
//     stored after its entity's DELETE stays, an orphan, as on the real
//     backend. Handlers run for each event as stored, with its history;
//   - the keepalive registers the entity at once (keepalived);
//   - REST: GET/PUT/DELETE /api/core/v2/namespaces/{ns}/entities/{name}
//     with "Authorization: Key ...": PUT answers 200 with the entity,
//     DELETE answers 204 and removes the entity's events too, 404 when
//     missing; GET .../events/{entity} lists its events.
//
// It does not import github.com/sensu/core/v2: tests decode what it
// recorded into those types themselves.
package sensupeer

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Message is one transport message an agent sent.
type Message struct {
	Type    string
	Payload []byte
	Agent   string
	Time    time.Time
}

// Handshake is one connection attempt.
type Handshake struct {
	Header http.Header
	Status int // 101 when accepted
}

// HandlerRun records an event whose check names handlers, as the
// backend's pipeline would run them.
type HandlerRun struct {
	Entity, Check string
	Handlers      []string
	Status        int
	// Previous is the status before this one in the event's history as
	// stored with it (-1 without one): what an is_incident filter reads.
	Previous int
}

// Incident reports whether sensu's built-in is_incident filter lets the
// run through: a non-OK status, or an OK one that resolves a non-OK one.
func (h HandlerRun) Incident() bool {
	return h.Status != 0 || (h.Previous > 0)
}

// Peer is a fake Sensu Go backend.
type Peer struct {
	User, Password, APIKey string
	// KeepaliveUnit is one second of the keepalive timeouts; tests shrink
	// it to see deregistration at keepalive failure quickly.
	KeepaliveUnit time.Duration
	// StoreLatency bounds the random delay between an event's read of the
	// stored check and its write (DefaultStoreLatency; 0 stores at once).
	StoreLatency time.Duration

	agentSrv, apiSrv *http.Server
	agentLn, apiLn   net.Listener

	mu         sync.Mutex
	handshakes []Handshake
	messages   []Message
	entities   map[string]json.RawMessage            // ns/name
	events     map[string]map[string]json.RawMessage // ns/name -> check
	deletions  []string                              // ns/name deleted through the API
	expired    []string                              // ns/name deleted at keepalive failure
	handlers   []HandlerRun
	histories  map[string]map[string][]historyEntry // ns/name -> check
	pending    int                                  // events read, not yet written
	sessions   map[*session]bool
	timers     map[string]*time.Timer
	changed    chan struct{}
	down       bool
}

type session struct {
	conn          *websocket.Conn
	namespace     string
	agent         string
	subscriptions []string
	wmu           sync.Mutex
}

// New starts a peer on two loopback ports: the agent endpoint and the API.
func New(user, password, apiKey string) (*Peer, error) {
	p := &Peer{User: user, Password: password, APIKey: apiKey, KeepaliveUnit: time.Second, StoreLatency: DefaultStoreLatency,
		entities: map[string]json.RawMessage{}, events: map[string]map[string]json.RawMessage{},
		histories: map[string]map[string][]historyEntry{},
		sessions:  map[*session]bool{}, timers: map[string]*time.Timer{}, changed: make(chan struct{})}
	var err error
	if p.agentLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if p.apiLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		p.agentLn.Close()
		return nil, err
	}
	p.agentSrv = &http.Server{Handler: http.HandlerFunc(p.serveAgent)}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/core/v2/namespaces/{ns}/entities/{name}", p.serveEntity)
	mux.HandleFunc("GET /api/core/v2/namespaces/{ns}/events/{entity}", p.serveEvents)
	mux.HandleFunc("GET /api/core/v2/namespaces/{ns}/events/{entity}/{check}", p.serveEvent)
	p.apiSrv = &http.Server{Handler: mux}
	go p.agentSrv.Serve(p.agentLn)
	go p.apiSrv.Serve(p.apiLn)
	return p, nil
}

// AgentURL is the ws:// URL agents connect to.
func (p *Peer) AgentURL() string { return "ws://" + p.agentLn.Addr().String() + "/" }

// APIURL is the REST API's base URL.
func (p *Peer) APIURL() string { return "http://" + p.apiLn.Addr().String() }

// Close stops both servers and drops every connection.
func (p *Peer) Close() {
	p.agentSrv.Close()
	p.apiSrv.Close()
	p.mu.Lock()
	for s := range p.sessions {
		s.conn.Close()
	}
	for _, t := range p.timers {
		t.Stop()
	}
	p.mu.Unlock()
}

func (p *Peer) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change of the peer's state,
// so a test can wait for a condition without polling blindly.
func (p *Peer) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

var upgrader = websocket.Upgrader{}

func (p *Peer) serveAgent(w http.ResponseWriter, r *http.Request) {
	record := func(status int) {
		p.mu.Lock()
		p.handshakes = append(p.handshakes, Handshake{Header: r.Header.Clone(), Status: status})
		p.notify()
		p.mu.Unlock()
	}
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		record(http.StatusServiceUnavailable)
		http.Error(w, "backend unavailable", http.StatusServiceUnavailable)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		record(http.StatusUnauthorized)
		http.Error(w, "missing credentials", http.StatusUnauthorized)
		return
	}
	if user != p.User || pass != p.Password {
		record(http.StatusUnauthorized)
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	header := http.Header{}
	header.Add("Accept", "application/octet-stream")
	header.Add("Accept", "application/json")
	if r.Header.Get("Accept") == "application/octet-stream" {
		// Protobuf is not spoken here; steward never asks for it.
		header.Set("Content-Type", "application/octet-stream")
	} else {
		header.Set("Content-Type", "application/json")
	}
	conn, err := upgrader.Upgrade(w, r, header)
	if err != nil {
		record(http.StatusBadRequest)
		return
	}
	record(http.StatusSwitchingProtocols)
	s := &session{conn: conn, namespace: r.Header.Get("Sensu-Namespace"), agent: r.Header.Get("Sensu-AgentName")}
	for _, sub := range strings.Split(r.Header.Get("Sensu-Subscriptions"), ",") {
		if sub != "" {
			s.subscriptions = append(s.subscriptions, sub)
		}
	}
	s.subscriptions = append(s.subscriptions, "entity:"+s.agent)
	p.mu.Lock()
	p.sessions[s] = true
	cfg, found := p.entities[s.namespace+"/"+s.agent]
	p.mu.Unlock()
	// agentd sends the stored entity config at once, or a placeholder
	// naming no entity (corev3.EntityNotFound) when there is none.
	if !found {
		cfg = json.RawMessage(`{"metadata":{"name":"sensu_unknown_entity","namespace":"` + s.namespace + `"},"entity_class":"agent"}`)
	}
	s.send("entity_config", cfg)
	defer func() {
		p.mu.Lock()
		delete(p.sessions, s)
		p.notify()
		p.mu.Unlock()
		conn.Close()
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		typ, payload, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			continue // the backend logs "invalid message" and goes on
		}
		p.handle(s, string(typ), payload)
	}
}

func (s *session) send(typ string, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.conn.WriteMessage(websocket.BinaryMessage, append([]byte(typ+"\n"), payload...))
}

// wireEvent is what the peer itself reads of an event.
type wireEvent struct {
	Entity *struct {
		Deregister bool `json:"deregister"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Deregistration struct {
			Handler string `json:"handler"`
		} `json:"deregistration"`
	} `json:"entity"`
	Check *struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Timeout  int      `json:"timeout"`
		Handlers []string `json:"handlers"`
		Status   int      `json:"status"`
	} `json:"check"`
}

func (p *Peer) handle(s *session, typ string, payload []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notify()
	p.messages = append(p.messages, Message{Type: typ, Payload: bytes.Clone(payload), Agent: s.agent, Time: time.Now()})
	var ev wireEvent
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Entity == nil || ev.Check == nil {
		return // the backend rejects it (Validate) and goes on
	}
	key := ev.Entity.Metadata.Namespace + "/" + ev.Entity.Metadata.Name
	var raw struct {
		Entity json.RawMessage `json:"entity"`
		Check  json.RawMessage `json:"check"`
	}
	_ = json.Unmarshal(payload, &raw)
	switch typ {
	case "keepalive":
		_, exists := p.entities[key]
		if !exists || ev.Entity.Metadata.Labels["sensu.io/managed_by"] == "sensu-agent" {
			p.entities[key] = bytes.Clone(raw.Entity)
		}
		p.storeEvent(key, "keepalive", payload)
		if t := p.timers[key]; t != nil {
			t.Stop()
		}
		if ev.Check.Timeout > 0 {
			deregister, handler := ev.Entity.Deregister, ev.Entity.Deregistration.Handler
			p.timers[key] = time.AfterFunc(time.Duration(ev.Check.Timeout)*p.KeepaliveUnit, func() {
				p.keepaliveFailed(key, deregister, handler)
			})
		}
	case "event":
		p.storeAsync(key, ev.Entity.Metadata.Name, ev.Check.Metadata.Name, ev.Check.Status, ev.Check.Handlers, payload)
	}
}

// DefaultStoreLatency is the peer's default bound on the delay of an
// event's store. A real backend's eventd takes from a millisecond to tens
// of them (an etcd round trip or two, more under load).
const DefaultStoreLatency = 40 * time.Millisecond

type historyEntry struct {
	Status   int   `json:"status"`
	Executed int64 `json:"executed"`
}

// maxHistory is core/v2's history length.
const maxHistory = 21

// storeAsync is eventd's read-modify-write of the check's event: the
// history is read now and written back later. Called with p.mu held.
func (p *Peer) storeAsync(key, entity, check string, status int, handlers []string, payload []byte) {
	snapshot := append([]historyEntry(nil), p.histories[key][check]...)
	payload = bytes.Clone(payload)
	p.pending++
	write := func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		defer p.notify()
		p.pending--
		previous := -1
		if len(snapshot) > 0 {
			previous = snapshot[len(snapshot)-1].Status
		}
		hist := append(snapshot, historyEntry{Status: status, Executed: time.Now().Unix()})
		if len(hist) > maxHistory {
			hist = hist[len(hist)-maxHistory:]
		}
		if p.histories[key] == nil {
			p.histories[key] = map[string][]historyEntry{}
		}
		p.histories[key][check] = hist
		p.storeEvent(key, check, payload)
		if len(handlers) > 0 {
			p.handlers = append(p.handlers, HandlerRun{Entity: entity, Check: check,
				Handlers: handlers, Status: status, Previous: previous})
		}
	}
	if p.StoreLatency <= 0 {
		go write()
		return
	}
	time.AfterFunc(rand.N(p.StoreLatency), write)
}

func (p *Peer) storeEvent(key, check string, payload []byte) {
	if p.events[key] == nil {
		p.events[key] = map[string]json.RawMessage{}
	}
	p.events[key][check] = bytes.Clone(payload)
}

// keepaliveFailed: the keepalive timed out. With deregister the backend
// deletes the entity and its events, and runs the deregistration handler.
func (p *Peer) keepaliveFailed(key string, deregister bool, handler string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notify()
	delete(p.timers, key)
	if !deregister {
		return
	}
	if _, ok := p.entities[key]; !ok {
		return
	}
	delete(p.entities, key)
	delete(p.events, key)
	delete(p.histories, key)
	p.expired = append(p.expired, key)
	if handler != "" {
		_, name, _ := strings.Cut(key, "/")
		p.handlers = append(p.handlers, HandlerRun{Entity: name, Check: "deregistration", Handlers: []string{handler}, Status: 1})
	}
}

func (p *Peer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Key "+p.APIKey || p.APIKey == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"unauthorized"}`))
		return false
	}
	return true
}

func (p *Peer) serveEntity(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	key := r.PathValue("ns") + "/" + r.PathValue("name")
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notify()
	switch r.Method {
	case http.MethodGet:
		e, ok := p.entities[key]
		if !ok {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(e)
	case http.MethodPut:
		var body bytes.Buffer
		body.ReadFrom(r.Body)
		if !json.Valid(body.Bytes()) {
			http.Error(w, `{"message":"bad entity"}`, http.StatusBadRequest)
			return
		}
		p.entities[key] = bytes.Clone(body.Bytes())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(body.Bytes())
	case http.MethodDelete:
		if _, ok := p.entities[key]; !ok {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		delete(p.entities, key)
		delete(p.events, key)
		delete(p.histories, key)
		if t := p.timers[key]; t != nil {
			t.Stop()
			delete(p.timers, key)
		}
		p.deletions = append(p.deletions, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *Peer) serveEvents(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var list []json.RawMessage
	for _, e := range p.events[r.PathValue("ns")+"/"+r.PathValue("entity")] {
		list = append(list, e)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// serveEvent answers GET of one event, as the events API does.
func (p *Peer) serveEvent(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(w, r) {
		return
	}
	p.mu.Lock()
	e, ok := p.events[r.PathValue("ns")+"/"+r.PathValue("entity")][r.PathValue("check")]
	p.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"not found"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(e)
}

// History lists the statuses in the stored history of an entity's check,
// oldest first: what `sensuctl event info` shows.
func (p *Peer) History(namespace, entity, check string) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, h := range p.histories[namespace+"/"+entity][check] {
		out = append(out, h.Status)
	}
	return out
}

// Settled reports whether every event received has been stored.
func (p *Peer) Settled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending == 0
}

// Orphans lists the stored events ("ns/entity/check") whose entity does not
// exist.
func (p *Peer) Orphans() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for key, checks := range p.events {
		if _, ok := p.entities[key]; ok {
			continue
		}
		for c := range checks {
			out = append(out, key+"/"+c)
		}
	}
	return out
}

// Publish sends a check request to every agent subscribed to subscription
// in namespace, as the backend's scheduler does, and returns how many got
// it.
func (p *Peer) Publish(namespace, subscription string, request []byte) int {
	p.mu.Lock()
	var targets []*session
	for s := range p.sessions {
		if s.namespace != namespace {
			continue
		}
		for _, sub := range s.subscriptions {
			if sub == subscription {
				targets = append(targets, s)
				break
			}
		}
	}
	p.mu.Unlock()
	n := 0
	for _, s := range targets {
		if s.send("check_request", request) == nil {
			n++
		}
	}
	return n
}

// SetDown makes the agent endpoint fail (an outage: connections dropped,
// handshakes answered 503) or work again.
func (p *Peer) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var drop []*session
	if down {
		for s := range p.sessions {
			drop = append(drop, s)
		}
	}
	p.mu.Unlock()
	for _, s := range drop {
		s.conn.Close()
	}
}

// Handshakes lists the connection attempts so far.
func (p *Peer) Handshakes() []Handshake {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Handshake(nil), p.handshakes...)
}

// Messages lists the messages of type typ ("" for all) received so far.
func (p *Peer) Messages(typ string) []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Message
	for _, m := range p.messages {
		if typ == "" || m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

// Entity returns the stored entity.
func (p *Peer) Entity(namespace, name string) (json.RawMessage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entities[namespace+"/"+name]
	return e, ok
}

// Events returns the stored events of an entity, by check name.
func (p *Peer) Events(namespace, name string) map[string]json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]json.RawMessage{}
	for k, v := range p.events[namespace+"/"+name] {
		out[k] = v
	}
	return out
}

// Deletions lists the entities deleted through the API ("ns/name").
func (p *Peer) Deletions() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deletions...)
}

// Expired lists the entities deleted at a keepalive failure.
func (p *Peer) Expired() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.expired...)
}

// HandlerRuns lists the handled events.
func (p *Peer) HandlerRuns() []HandlerRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]HandlerRun(nil), p.handlers...)
}

// Connected reports whether an agent of that name has a session.
func (p *Peer) Connected(agent string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.sessions {
		if s.agent == agent {
			return true
		}
	}
	return false
}

// BasicAuth decodes a handshake's credentials.
func BasicAuth(h http.Header) (user, password string, ok bool) {
	v, found := strings.CutPrefix(h.Get("Authorization"), "Basic ")
	if !found {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(b), ":")
	return
}

// Blackhole accepts TCP connections and never answers: a backend that hangs.
type Blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// NewBlackhole listens on a loopback port.
func NewBlackhole() (*Blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Blackhole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	return b, nil
}

// Addr is host:port.
func (b *Blackhole) Addr() string { return b.ln.Addr().String() }

// Close closes the listener and every connection.
func (b *Blackhole) Close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
}
