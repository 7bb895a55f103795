package main

import (
	"encoding/json"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// baselineServer is the reference the load tool measures Switchboard
// against: the simplest fan-out server one can write on bare gws. No actors,
// no broker, no queues: a room is a set of connections behind a lock, and a
// message is written to each member with one WriteMessage (one write(2) per
// frame per recipient) from the sender's read loop. It speaks the subset of
// the protocol the scenarios use (welcome, join_room, leave_room,
// room_message, chat, ack) with byte-identical events, so the same clients
// drive both servers.
type baselineServer struct {
	up  *gws.Upgrader
	hs  *http.Server
	ln  net.Listener
	mux *http.ServeMux

	mu    sync.RWMutex
	rooms map[string]map[*gws.Conn]struct{} // guarded by mu
	conns map[*gws.Conn]string              // connection -> user; guarded by mu

	open atomic.Int64
	out  atomic.Int64
	wg   sync.WaitGroup // read loops
}

// startBaseline listens on addr (a loopback address) and serves.
func startBaseline(addr string, readBuf int) (*baselineServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &baselineServer{ln: ln, mux: http.NewServeMux(), rooms: map[string]map[*gws.Conn]struct{}{}, conns: map[*gws.Conn]string{}}
	s.up = gws.NewUpgrader(s, &gws.ServerOption{ReadBufferSize: readBuf, Recovery: gws.Recovery})
	s.mux.HandleFunc("GET /ws", s.serveWS)
	s.mux.HandleFunc("GET /stats", s.serveStats)
	s.hs = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.hs.Serve(ln) }()
	return s, nil
}

// URL is the server's ws:// base address.
func (s *baselineServer) URL() string { return "ws://" + s.ln.Addr().String() }

// Close stops listening and closes every connection, waiting for their read loops.
func (s *baselineServer) Close() {
	_ = s.hs.Close()
	s.mu.RLock()
	for c := range s.conns {
		_ = c.NetConn().Close()
	}
	s.mu.RUnlock()
	s.wg.Wait()
}

func (s *baselineServer) serveWS(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("client_id")
	if user == "" {
		user = actors.RandomID(8)
	}
	c, err := s.up.Upgrade(w, r)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns[c] = user
	s.mu.Unlock()
	s.open.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		c.ReadLoop()
	}()
}

func (s *baselineServer) serveStats(w http.ResponseWriter, _ *http.Request) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mu.RLock()
	rooms := len(s.rooms)
	s.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(nodeStats{
		LocalConnections: s.open.Load(), Rooms: int64(rooms), Node: "baseline",
		MessagesOut: s.out.Load(), Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapInuse, StackBytes: ms.StackInuse, RSSBytes: processRSS(),
	})
}

// OnOpen runs first on the read loop: the welcome goes out before any reply.
func (s *baselineServer) OnOpen(c *gws.Conn) {
	s.mu.RLock()
	user := s.conns[c]
	s.mu.RUnlock()
	_ = c.WriteMessage(gws.OpcodeText, wire.WelcomeEvent(user, "baseline").JSON)
}

func (s *baselineServer) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }
func (s *baselineServer) OnPong(*gws.Conn, []byte)     {}
func (s *baselineServer) OnClose(c *gws.Conn, _ error) { s.forget(c) }
func (s *baselineServer) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	var f struct {
		Type    string          `json:"type"`
		Room    string          `json:"room"`
		Content string          `json:"content"`
		ID      json.RawMessage `json:"id"`
	}
	if json.Unmarshal(m.Bytes(), &f) != nil {
		return
	}
	s.mu.RLock()
	user := s.conns[c]
	s.mu.RUnlock()
	switch f.Type {
	case "join_room", "leave_room":
		s.mu.Lock()
		members := s.rooms[f.Room]
		if f.Type == "join_room" {
			if members == nil {
				members = map[*gws.Conn]struct{}{}
				s.rooms[f.Room] = members
			}
			members[c] = struct{}{}
		} else if members != nil {
			delete(members, c)
			if len(members) == 0 {
				delete(s.rooms, f.Room)
			}
		}
		s.mu.Unlock()
	case "room_message":
		s.fanout(wire.ChatEvent(user, f.Room, f.Content).JSON, func() []*gws.Conn { return s.members(f.Room) })
	case "chat":
		s.fanout(wire.ChatEvent(user, "", f.Content).JSON, func() []*gws.Conn { return s.others(user) })
	}
	if len(f.ID) > 0 {
		_ = c.WriteMessage(gws.OpcodeText, wire.AckEvent(f.ID).JSON)
	}
}

// fanout writes payload to every recipient, one WriteMessage each: the
// one-write-per-frame-per-recipient cost the comparison is about.
func (s *baselineServer) fanout(payload []byte, recipients func() []*gws.Conn) {
	to := recipients()
	for _, c := range to {
		_ = c.WriteMessage(gws.OpcodeText, payload)
	}
	s.out.Add(int64(len(to)))
}

func (s *baselineServer) members(room string) []*gws.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*gws.Conn, 0, len(s.rooms[room]))
	for c := range s.rooms[room] {
		out = append(out, c)
	}
	return out
}

func (s *baselineServer) others(user string) []*gws.Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*gws.Conn, 0, len(s.conns))
	for c, u := range s.conns {
		if u != user {
			out = append(out, c)
		}
	}
	return out
}

func (s *baselineServer) forget(c *gws.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	for name, members := range s.rooms {
		delete(members, c)
		if len(members) == 0 {
			delete(s.rooms, name)
		}
	}
	s.mu.Unlock()
	s.open.Add(-1)
}
