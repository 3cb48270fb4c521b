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
//   - events are stored by entity and check;
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
}

// Peer is a fake Sensu Go backend.
type Peer struct {
	User, Password, APIKey string
	// KeepaliveUnit is one second of the keepalive timeouts; tests shrink
	// it to see deregistration at keepalive failure quickly.
	KeepaliveUnit time.Duration

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
	sessions   map[*session]bool
	timers     map[string]*time.Timer
	changed    chan struct{}
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
	p := &Peer{User: user, Password: password, APIKey: apiKey, KeepaliveUnit: time.Second,
		entities: map[string]json.RawMessage{}, events: map[string]map[string]json.RawMessage{},
		sessions: map[*session]bool{}, timers: map[string]*time.Timer{}, changed: make(chan struct{})}
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
		p.storeEvent(key, ev.Check.Metadata.Name, payload)
		if len(ev.Check.Handlers) > 0 {
			p.handlers = append(p.handlers, HandlerRun{Entity: ev.Entity.Metadata.Name, Check: ev.Check.Metadata.Name,
				Handlers: ev.Check.Handlers, Status: ev.Check.Status})
		}
	}
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
