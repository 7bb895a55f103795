package actors

import (
	"runtime/metrics"
	"sync/atomic"
	"time"

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
	heap, _ := MemoryInUse()
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

// MemoryInUse reads the heap's spans in use (runtime.MemStats.HeapInuse)
// and the goroutine stacks' (StackInuse) from runtime/metrics, which does
// not stop the world: the stats command and GET /stats are open to every
// client, and runtime.ReadMemStats at each request would let a flood of
// them pause every goroutine of the node that often.
func MemoryInUse() (heap, stack uint64) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return v(0) + v(1), v(2)
}
