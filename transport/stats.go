package transport

import (
	"encoding/json"
	"net/http"
	"runtime"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// Stats is the /stats document: the tutorial's two fields first, then what an
// operator needs.
type Stats struct {
	LocalConnections int64            `json:"local_connections"`
	Rooms            int64            `json:"rooms"`
	Node             string           `json:"node"`
	Users            int64            `json:"users"`
	OpenSockets      int64            `json:"open_sockets"`
	Draining         bool             `json:"draining"`
	UptimeSeconds    float64          `json:"uptime_seconds"`
	Broker           port.BrokerState `json:"broker"`
	MessagesIn       int64            `json:"messages_in"`
	MessagesOut      int64            `json:"messages_out"`
	BytesOut         int64            `json:"bytes_out"`
	BrokerIn         int64            `json:"broker_in"`
	BrokerOut        int64            `json:"broker_out"`
	Errors           int64            `json:"errors"`
	RateLimited      int64            `json:"rate_limited"`
	SlowConsumers    int64            `json:"slow_consumers_closed"`
	SilentClosed     int64            `json:"silent_peers_closed"`
	Unavailable      int64            `json:"unavailable"`
	ConnectionsTotal int64            `json:"connections_total"`
	Restarts         int64            `json:"actor_restarts"`
	SessionPanics    int64            `json:"session_panics"`
	RoomPanics       int64            `json:"room_panics"`
	HubPanics        int64            `json:"hub_panics"`
	ReadLoopPanics   uint64           `json:"read_loop_panics"`
	FrameBudgetUsed  int64            `json:"frame_budget_used_bytes"`
	Goroutines       int              `json:"goroutines"`
	HeapBytes        uint64           `json:"heap_bytes"`
	StackBytes       uint64           `json:"stack_bytes"`
	RSSBytes         uint64           `json:"rss_bytes"`
}

// Stats returns a snapshot of the node.
func (s *Server) Stats() Stats {
	m := s.node.Metrics()
	heap, stack := port.MemoryInUse()
	return Stats{
		LocalConnections: m.Sessions.Load(),
		Rooms:            m.Rooms.Load(),
		Node:             s.node.ID(),
		Users:            m.Users.Load(),
		OpenSockets:      s.open.Load(),
		Draining:         s.draining.Load() || s.node.Draining(),
		UptimeSeconds:    time.Since(s.started).Seconds(),
		Broker:           s.node.BrokerState(),
		MessagesIn:       m.MessagesIn.Load(),
		MessagesOut:      m.MessagesOut.Load(),
		BytesOut:         m.BytesOut.Load(),
		BrokerIn:         m.BrokerIn.Load(),
		BrokerOut:        m.BrokerOut.Load(),
		Errors:           m.Errors.Load(),
		RateLimited:      m.RateLimited.Load(),
		SlowConsumers:    m.SlowClosed.Load(),
		SilentClosed:     m.SilentClosed.Load(),
		Unavailable:      m.Unavailable.Load(),
		ConnectionsTotal: m.Connections.Load(),
		Restarts:         m.Restarts.Load(),
		SessionPanics:    m.SessionPanic.Load(),
		RoomPanics:       m.RoomPanic.Load(),
		HubPanics:        m.HubPanic.Load(),
		ReadLoopPanics:   s.readPanics.Load(),
		FrameBudgetUsed:  s.frames.budget.used.Load(),
		Goroutines:       runtime.NumGoroutine(),
		HeapBytes:        heap,
		StackBytes:       stack,
		RSSBytes:         readRSS(),
	}
}

func (s *Server) serveStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(s.Stats())
}

// Ready reports whether the node accepts connections and its broker is
// connected.
func (s *Server) Ready() (bool, string) {
	if s.draining.Load() || s.node.Draining() {
		return false, "draining"
	}
	if st := s.node.BrokerState(); !st.Connected {
		return false, "broker down"
	}
	return true, "ready"
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.Ready()
	if !ok {
		writeText(w, http.StatusServiceUnavailable, why)
		return
	}
	writeText(w, http.StatusOK, why)
}
