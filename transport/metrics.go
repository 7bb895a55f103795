package transport

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// promMetrics exposes the node's counters in Prometheus format. Each Server
// has its own registry, so several nodes can live in one process.
type promMetrics struct {
	reg     *prometheus.Registry
	refused *prometheus.CounterVec
	// apiPublishes counts POST /api/publish calls that reached the node, by
	// target kind (room, user, broadcast).
	apiPublishes *prometheus.CounterVec
}

func newPromMetrics(s *Server) *promMetrics {
	reg := prometheus.NewRegistry()
	m := s.node.Metrics()
	pm := &promMetrics{reg: reg}
	pm.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_handshakes_refused_total",
		Help: "WebSocket handshakes refused before the upgrade, by reason (auth, origin, full, draining, handshake).",
	}, []string{"reason"})
	pm.apiPublishes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_api_publishes_total",
		Help: "Valid POST /api/publish requests, by target (room, user, broadcast).",
	}, []string{"target"})
	reg.MustRegister(pm.apiPublishes)
	registerActorHistograms(reg, m)
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		pm.refused,
		gauge("switchboard_sessions", "Live session actors (local connections).", func() float64 { return float64(m.Sessions.Load()) }),
		gauge("switchboard_rooms", "Live room actors (rooms with a local member).", func() float64 { return float64(m.Rooms.Load()) }),
		gauge("switchboard_users", "Distinct users with a local connection.", func() float64 { return float64(m.Users.Load()) }),
		gauge("switchboard_open_sockets", "Upgraded WebSockets whose read loop is running.", func() float64 { return float64(s.open.Load()) }),
		gauge("switchboard_broker_connected", "1 while the broker is reachable.", func() float64 {
			if s.node.BrokerState().Connected {
				return 1
			}
			return 0
		}),
		gauge("switchboard_broker_outbox", "Publishes waiting for the broker.", func() float64 { return float64(s.node.BrokerState().Outbox) }),
		gauge("switchboard_draining", "1 while the node drains.", func() float64 {
			if s.draining.Load() || s.node.Draining() {
				return 1
			}
			return 0
		}),
		counter("switchboard_connections_total", "Sessions opened.", func() float64 { return float64(m.Connections.Load()) }),
		counter("switchboard_messages_in_total", "Client commands received.", func() float64 { return float64(m.MessagesIn.Load()) }),
		counter("switchboard_messages_out_total", "Frames queued to clients.", func() float64 { return float64(m.MessagesOut.Load()) }),
		counter("switchboard_bytes_out_total", "Bytes queued to clients.", func() float64 { return float64(m.BytesOut.Load()) }),
		counter("switchboard_errors_total", "Error events sent to clients.", func() float64 { return float64(m.Errors.Load()) }),
		counter("switchboard_rate_limited_total", "Client commands refused with rate_limited.", func() float64 { return float64(m.RateLimited.Load()) }),
		counter("switchboard_slow_consumers_total", "Sessions closed with 1013 after exceeding their outbound budget.", func() float64 { return float64(m.SlowClosed.Load()) }),
		counter("switchboard_policy_closes_total", "Sessions closed with 1008 (flooding, binary frames).", func() float64 { return float64(m.PolicyClosed.Load()) }),
		counter("switchboard_unavailable_total", "Publishes refused because the broker was down and its outbox full.", func() float64 { return float64(m.Unavailable.Load()) }),
		counter("switchboard_broker_received_total", "Envelopes received from the broker and delivered.", func() float64 { return float64(m.BrokerIn.Load()) }),
		counter("switchboard_broker_published_total", "Envelopes handed to the broker.", func() float64 { return float64(m.BrokerOut.Load()) }),
		counter("switchboard_broker_subscribe_timeouts_total", "Rooms whose channel the broker did not confirm within 1 s; their joins were refused with unavailable.", func() float64 { return float64(m.SubscribeTimeouts.Load()) }),
		counter("switchboard_history_recovered_total", "Publications sent to joiners that recovered with since.", func() float64 { return float64(m.Recovered.Load()) }),
		counter("switchboard_history_recoveries_failed_total", "Joins with since answered recovered:false (another epoch, trimmed history, or past the reply budget).", func() float64 { return float64(m.RecoveriesFailed.Load()) }),
		counter("switchboard_history_recoveries_too_big_total", "Joins with since answered recovered:false because what they missed exceeded the reply budget.", func() float64 { return float64(m.RecoveriesTooBig.Load()) }),
		counter("switchboard_history_gaps_total", "Publications a room never received and could no longer read from its stream.", func() float64 { return float64(m.HistoryGaps.Load()) }),
		counter("switchboard_history_read_timeouts_total", "Position and catch-up reads of a room's stream given up after half the join retry.", func() float64 { return float64(m.HistoryReadTimeouts.Load()) }),
		counter("switchboard_history_answers_trimmed_total", "History answers cut to their newest publications to fit the reply budget.", func() float64 { return float64(m.HistoryTrimmed.Load()) }),
		counter("switchboard_actor_restarts_total", "Room and hub panics absorbed by supervision (resumed).", func() float64 { return float64(m.Restarts.Load()) }),
		counter("switchboard_session_panics_total", "Sessions stopped by a panic.", func() float64 { return float64(m.SessionPanic.Load()) }),
		counter("switchboard_room_panics_total", "Room actor panics (resumed with their members; a room that keeps panicking is stopped and re-created by its members).", func() float64 { return float64(m.RoomPanic.Load()) }),
		counter("switchboard_hub_panics_total", "Hub panics (resumed with the directory).", func() float64 { return float64(m.HubPanic.Load()) }),
		counter("switchboard_read_loop_panics_total", "Connections whose read loop panicked; each was closed with 1011, alone.", func() float64 { return float64(s.readPanics.Load()) }),
		gauge("switchboard_frame_budget_used_bytes", "Memory reserved for client frames whose header has arrived and whose payload has not (all connections).", func() float64 { return float64(s.frames.budget.used.Load()) }),
		counter("switchboard_frame_budget_waits_total", "Client frames that waited for the frame budget.", func() float64 { return float64(s.frames.budget.waits.Load()) }),
		counter("switchboard_frame_budget_refused_total", "Connections closed with 1013 because a frame waited for the frame budget in vain.", func() float64 { return float64(s.frames.budget.refused.Load()) }),
		counter("switchboard_fanouts_total", "Local fan-outs performed.", func() float64 { return float64(m.Fanouts.Load()) }),
		counter("switchboard_fanout_recipients_total", "Local recipients summed over all fan-outs.", func() float64 { return float64(m.FanoutSizes.Load()) }),
	)
	// A broker that counts its own work (the Redis broker, cluster/redis) is exported too.
	if c, ok := s.node.Broker().(prometheus.Collector); ok {
		reg.MustRegister(c)
	}
	return pm
}

// Registry lets an embedding program add its own collectors.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.reg }

func (pm *promMetrics) handler() http.Handler {
	return promhttp.HandlerFor(pm.reg, promhttp.HandlerOpts{Registry: pm.reg})
}
