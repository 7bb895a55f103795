package actors

import (
	"sync/atomic"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// statsEvery is how long an encoded stats event is reused: every session
// that asks within it gets the same bytes (encoded once), and a flood of
// stats commands costs one snapshot per interval, not one per command.
const statsEvery = 100 * time.Millisecond

type statsSnapshot struct {
	at time.Time
	ev *wire.Event
}

// statsCache holds the latest stats event. Any session's goroutine reads
// it and, when it is stale, replaces it (two sessions may both rebuild it;
// the later one wins, harmlessly).
type statsCache struct{ latest atomic.Pointer[statsSnapshot] }

// statsEvent returns the node's stats event, at most statsEvery old.
func (n *Node) statsEvent() *wire.Event {
	now := time.Now()
	if s := n.stats.latest.Load(); s != nil && now.Sub(s.at) < statsEvery {
		return s.ev
	}
	m := n.metrics
	heap, _ := port.MemoryInUse()
	broker := n.BrokerState()
	ev := wire.StatsEvent(wire.Stats{
		Node:             n.cfg.NodeID,
		LocalConnections: m.Sessions.Load(),
		Rooms:            m.Rooms.Load(),
		Users:            m.Users.Load(),
		UptimeSeconds:    now.Sub(n.started).Seconds(),
		Broker:           wire.StatsBroker{Kind: broker.Kind, Connected: broker.Connected, Outbox: broker.Outbox},
		MessagesIn:       m.MessagesIn.Load(),
		MessagesOut:      m.MessagesOut.Load(),
		HeapBytes:        heap,
	})
	n.stats.latest.Store(&statsSnapshot{at: now, ev: ev})
	return ev
}
