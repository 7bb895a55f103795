package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Broadcasts (global chat, from clients here or from other nodes) are
// batched as rooms batch their fan-out: they wait in the hub's pending
// list until the hub has handled what its mailbox held (hubFlush), then
// every session gets them in one message and writes them in one system
// call. A session whose user sent one of them gets the others only (a
// sender does not get its own chat). Everything else the hub hands to
// sessions first flushes what is pending, so that each source's events
// keep their order.

type pendingBroadcast struct {
	event   *wire.Event
	exclude string // the user whose sessions do not get it
}

// hub -> hub: fan out the pending broadcasts.
type hubFlush struct{}

// queueBroadcast adds ev to the pending broadcasts.
func (h *hub) queueBroadcast(ctx actor.Context, ev *wire.Event, exclude string) {
	h.pendingB = append(h.pendingB, pendingBroadcast{event: ev, exclude: exclude})
	if !h.flushQueued {
		h.flushQueued = true
		ctx.Send(ctx.Self(), hubFlush{})
	}
}

// flushBroadcasts hands the pending broadcasts to every session.
func (h *hub) flushBroadcasts(ctx actor.Context) {
	pending := h.pendingB
	h.pendingB = nil
	switch len(pending) {
	case 0:
		return
	case 1:
		h.broadcast(ctx, pending[0].event, pending[0].exclude)
		return
	}
	excluded := make(map[string]struct{}, 4)
	events := make([]*wire.Event, len(pending))
	for i, p := range pending {
		events[i] = p.event
		if p.exclude != "" {
			excluded[p.exclude] = struct{}{}
		}
	}
	batch := &eventBatch{events: events}
	sent := make([]int64, len(pending)) // recipients of each, for the metrics
	for _, e := range h.sessions {
		if _, ok := excluded[e.user]; !ok {
			ctx.Send(e.pid, batch)
			for i := range sent {
				sent[i]++
			}
			continue
		}
		own := make([]*wire.Event, 0, len(pending))
		for i, p := range pending {
			if p.exclude != e.user {
				own = append(own, p.event)
				sent[i]++
			}
		}
		if len(own) > 0 {
			ctx.Send(e.pid, &eventBatch{events: own})
		}
	}
	for _, n := range sent {
		h.node.metrics.Fanouts.Add(1)
		h.node.metrics.FanoutSizes.Add(n)
		h.node.metrics.FanoutSize.Observe(n)
	}
}
