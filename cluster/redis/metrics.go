package redis

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the Redis broker's counters. Each is written with atomic
// operations by the goroutine or actor named in its comment and read by
// Stats and Collect (HTTP handlers).
type counters struct {
	received      atomic.Int64 // read loops: messages read from pub/sub connections (probes excluded)
	ownSkipped    atomic.Int64 // read loops: own envelopes skipped before decoding
	dropped       atomic.Int64 // read loops: dropped because the inbound buffer was full
	unrouted      atomic.Int64 // connection actors: for a channel no longer subscribed here
	invalid       atomic.Int64 // subscription actors: malformed envelopes
	duplicates    atomic.Int64 // subscription actors: copies of envelopes already delivered (a resend after a fault)
	delivered     atomic.Int64 // subscription actors: envelopes decoded and handed to local targets
	published     atomic.Int64 // outbox writer: PUBLISH commands confirmed by Redis
	directs       atomic.Int64 // outbox writer: direct-message scripts run
	roundTrips    atomic.Int64 // outbox writer: round trips (a pipelined batch counts once)
	sendFailures  atomic.Int64 // outbox writer: round trips that failed (their commands stay queued)
	refused       atomic.Int64 // Publish/SendDirect callers: refused, outbox full
	expired       atomic.Int64 // outbox writer: direct messages given up after waiting past their deadline
	resent        atomic.Int64 // outbox writer: publishes sent again after a fault (heard by nobody, or within ResendWindow before it was noticed)
	flushTimeouts atomic.Int64 // outbox writer: FlushWait ran out before the other nodes were back
	subscriptions atomic.Int64 // bus: channels this node subscribes (gauge)
	reconnects    atomic.Int64 // bus supervisor: pub/sub connection restarts
	subRestarts   atomic.Int64 // bus supervisor: subscription actor restarts
	probes        atomic.Int64 // connection actors: probes published
	probeFailures atomic.Int64 // connection actors: probes or subscriptions not confirmed in time
	probeRTT      atomic.Int64 // connection actors: last probe round trip, ns (gauge)
	recoveryNs    atomic.Int64 // connection actors: last outage, first connection down to all up again, ns (gauge)
	heartbeatErrs atomic.Int64 // heartbeat: heartbeats that failed
	resyncs       atomic.Int64 // outbox writer: presence rewritten after this node's entry was lost
	reaped        atomic.Int64 // heartbeat: dead nodes removed from the directory by this node
	vanished      atomic.Int64 // heartbeat: users reported user_disconnected for dead nodes
	busPanics     atomic.Int64 // bus guardian: bus panics (resumed)

	appended       atomic.Int64 // outbox writer: room publications numbered, stored and published (stream.go)
	appendFailures atomic.Int64 // outbox writer: room publications Redis refused to number
	reads          atomic.Int64 // stream reads answered
	readFailures   atomic.Int64 // stream reads that failed (Redis unreachable or slow)
	readsRefused   atomic.Int64 // reads refused: maxReads in flight, or maxClientReads of clients'

	presenceQueries atomic.Int64 // room presence queries answered (roompresence.go)
}

// Stats is a snapshot of the broker's counters; see docs/operations.md
// for what each means.
type Stats struct {
	Received        int64         `json:"received"`
	OwnSkipped      int64         `json:"own_skipped"`
	Dropped         int64         `json:"dropped"`
	Unrouted        int64         `json:"unrouted"`
	Invalid         int64         `json:"invalid"`
	Duplicates      int64         `json:"duplicates"`
	Delivered       int64         `json:"delivered"`
	InboundBytes    int64         `json:"inbound_bytes"`
	Published       int64         `json:"published"`
	Directs         int64         `json:"directs"`
	RoundTrips      int64         `json:"round_trips"`
	SendFailures    int64         `json:"send_failures"`
	Refused         int64         `json:"refused"`
	DirectsExpired  int64         `json:"directs_expired"`
	Resent          int64         `json:"resent"`
	FlushTimeouts   int64         `json:"flush_timeouts"`
	Outbox          int           `json:"outbox"`
	Subscriptions   int64         `json:"subscriptions"`
	ConnectionsUp   int           `json:"connections_up"`
	Connections     int           `json:"connections"`
	Reconnects      int64         `json:"reconnects"`
	SubRestarts     int64         `json:"subscription_restarts"`
	Probes          int64         `json:"probes"`
	ProbeFailures   int64         `json:"probe_failures"`
	ProbeRTT        time.Duration `json:"probe_rtt_ns"`
	LastRecovery    time.Duration `json:"last_recovery_ns"`
	HeartbeatErrors int64         `json:"heartbeat_errors"`
	Resyncs         int64         `json:"presence_resyncs"`
	Peers           int           `json:"peer_nodes"`
	NodesReaped     int64         `json:"nodes_reaped"`
	UsersVanished   int64         `json:"users_vanished"`
	Appended        int64         `json:"stream_appended"`
	AppendFailures  int64         `json:"stream_append_failures"`
	Reads           int64         `json:"stream_reads"`
	ReadFailures    int64         `json:"stream_read_failures"`
	ReadsRefused    int64         `json:"stream_reads_refused"`
}

// Stats returns a snapshot of the broker's counters.
func (r *Broker) Stats() Stats {
	s := &r.stats
	up, total := r.health.upCount()
	st := Stats{
		Received: s.received.Load(), OwnSkipped: s.ownSkipped.Load(), Dropped: s.dropped.Load(),
		Unrouted: s.unrouted.Load(), Invalid: s.invalid.Load(), Duplicates: s.duplicates.Load(), Delivered: s.delivered.Load(),
		InboundBytes: r.inflight.Load(), Published: s.published.Load(), Directs: s.directs.Load(),
		RoundTrips: s.roundTrips.Load(), SendFailures: s.sendFailures.Load(), Refused: s.refused.Load(),
		DirectsExpired: s.expired.Load(),
		Resent:         s.resent.Load(), FlushTimeouts: s.flushTimeouts.Load(),
		Subscriptions: s.subscriptions.Load(), ConnectionsUp: up, Connections: total,
		Reconnects: s.reconnects.Load(), SubRestarts: s.subRestarts.Load(),
		Probes: s.probes.Load(), ProbeFailures: s.probeFailures.Load(),
		ProbeRTT: time.Duration(s.probeRTT.Load()), LastRecovery: time.Duration(s.recoveryNs.Load()),
		HeartbeatErrors: s.heartbeatErrs.Load(), Resyncs: s.resyncs.Load(),
		NodesReaped: s.reaped.Load(), UsersVanished: s.vanished.Load(),
		Appended: s.appended.Load(), AppendFailures: s.appendFailures.Load(),
		Reads: s.reads.Load(), ReadFailures: s.readFailures.Load(), ReadsRefused: s.readsRefused.Load(),
	}
	if r.running.Load() {
		st.Outbox = r.out.len()
		st.Peers = len(r.pres.peers())
	}
	return st
}

// metric describes one exported series.
type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*Stats) float64
}

func counter(name, help string, v func(*Stats) float64) metric {
	return metric{prometheus.NewDesc("switchboard_redis_"+name, help, nil, nil), prometheus.CounterValue, v}
}

func gauge(name, help string, v func(*Stats) float64) metric {
	return metric{prometheus.NewDesc("switchboard_redis_"+name, help, nil, nil), prometheus.GaugeValue, v}
}

var metrics = []metric{
	counter("received_total", "Messages read from the pub/sub connections (probes excluded).", func(s *Stats) float64 { return float64(s.Received) }),
	counter("own_skipped_total", "Envelopes this node published itself, skipped before decoding.", func(s *Stats) float64 { return float64(s.OwnSkipped) }),
	counter("dropped_total", "Messages dropped by a read loop because the inbound buffer was full.", func(s *Stats) float64 { return float64(s.Dropped) }),
	counter("unrouted_total", "Messages for a channel this node had just unsubscribed.", func(s *Stats) float64 { return float64(s.Unrouted) }),
	counter("invalid_total", "Malformed envelopes received and ignored.", func(s *Stats) float64 { return float64(s.Invalid) }),
	counter("duplicates_total", "Copies of envelopes already delivered, dropped (a publisher resent what a fault may have swallowed).", func(s *Stats) float64 { return float64(s.Duplicates) }),
	counter("delivered_total", "Envelopes decoded and handed to local rooms or the hub.", func(s *Stats) float64 { return float64(s.Delivered) }),
	gauge("inbound_buffer_bytes", "Bytes read from Redis and not yet delivered.", func(s *Stats) float64 { return float64(s.InboundBytes) }),
	counter("published_total", "PUBLISH commands confirmed by Redis.", func(s *Stats) float64 { return float64(s.Published) }),
	counter("directs_total", "Direct messages routed through the presence directory.", func(s *Stats) float64 { return float64(s.Directs) }),
	counter("round_trips_total", "Round trips of the outbox writer (a pipelined batch counts once).", func(s *Stats) float64 { return float64(s.RoundTrips) }),
	counter("send_failures_total", "Outbox round trips that failed; their commands stayed queued and were sent again.", func(s *Stats) float64 { return float64(s.SendFailures) }),
	counter("refused_total", "Publishes refused because the outbox was full (senders got unavailable).", func(s *Stats) float64 { return float64(s.Refused) }),
	counter("directs_expired_total", "Direct messages given up, unsent, after waiting in the outbox past their deadline (Redis down; senders got unavailable).", func(s *Stats) float64 { return float64(s.DirectsExpired) }),
	counter("resent_total", "Publishes sent again after a fault: heard by nobody, or published just before this node noticed it.", func(s *Stats) float64 { return float64(s.Resent) }),
	counter("flush_wait_timeouts_total", "Recoveries after which the outbox stopped waiting for other nodes' subscriptions.", func(s *Stats) float64 { return float64(s.FlushTimeouts) }),
	gauge("outbox", "Commands waiting in the outbox.", func(s *Stats) float64 { return float64(s.Outbox) }),
	gauge("subscriptions", "Channels this node subscribes (probe channels excluded).", func(s *Stats) float64 { return float64(s.Subscriptions) }),
	gauge("pubsub_connections", "Pub/sub connections configured.", func(s *Stats) float64 { return float64(s.Connections) }),
	gauge("pubsub_connections_up", "Pub/sub connections subscribed and answering probes.", func(s *Stats) float64 { return float64(s.ConnectionsUp) }),
	counter("reconnects_total", "Restarts of pub/sub connections after a fault, and re-creations after a stop from outside.", func(s *Stats) float64 { return float64(s.Reconnects) }),
	counter("subscription_restarts_total", "Restarts of channel subscription actors after a panic, and re-creations after a stop from outside.", func(s *Stats) float64 { return float64(s.SubRestarts) }),
	counter("probes_total", "Liveness probes published by idle pub/sub connections.", func(s *Stats) float64 { return float64(s.Probes) }),
	counter("probe_failures_total", "Probes or (re)subscriptions not confirmed in time; each restarts its connection.", func(s *Stats) float64 { return float64(s.ProbeFailures) }),
	gauge("probe_rtt_seconds", "Round trip of the last probe.", func(s *Stats) float64 { return s.ProbeRTT.Seconds() }),
	gauge("last_recovery_seconds", "Last outage of the subscriptions: first connection down to all subscribed again.", func(s *Stats) float64 { return s.LastRecovery.Seconds() }),
	counter("heartbeat_failures_total", "Presence heartbeats that failed.", func(s *Stats) float64 { return float64(s.HeartbeatErrors) }),
	counter("presence_resyncs_total", "Times this node rewrote its presence entries after finding them gone.", func(s *Stats) float64 { return float64(s.Resyncs) }),
	gauge("peer_nodes", "Other nodes registered in the presence directory, as of the last heartbeat.", func(s *Stats) float64 { return float64(s.Peers) }),
	counter("nodes_reaped_total", "Dead nodes removed from the presence directory by this node.", func(s *Stats) float64 { return float64(s.NodesReaped) }),
	counter("stream_appended_total", "Room publications numbered, stored in their room's stream and published.", func(s *Stats) float64 { return float64(s.Appended) }),
	counter("stream_append_failures_total", "Room publications Redis refused to number (logged).", func(s *Stats) float64 { return float64(s.AppendFailures) }),
	counter("stream_reads_total", "Room stream reads answered (positions, recoveries, gap fills, history queries).", func(s *Stats) float64 { return float64(s.Reads) }),
	counter("stream_read_failures_total", "Room stream reads that failed (Redis unreachable or slow); their askers got unavailable.", func(s *Stats) float64 { return float64(s.ReadFailures) }),
	counter("stream_reads_refused_total", "Reads refused because 64 were in flight, or 32 that clients asked for (history and presence queries, recoveries) and no turn came within 1 s.", func(s *Stats) float64 { return float64(s.ReadsRefused) }),
	counter("users_vanished_total", "Users of dead nodes this node reported user_disconnected for.", func(s *Stats) float64 { return float64(s.UsersVanished) }),
}

var _ prometheus.Collector = (*Broker)(nil)

// Describe implements prometheus.Collector, so a transport.Server (or any
// registry) can export the broker's counters.
func (r *Broker) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (r *Broker) Collect(ch chan<- prometheus.Metric) {
	st := r.Stats()
	for _, m := range metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&st))
	}
}
