package redis

import (
	"errors"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// The node's own membership events may queue past the limit that refuses
// clients' publishes: when many connections leave at once their user_left
// must reach the other nodes, and there is nobody to refuse them to. They
// are bounded too, presenceSlack times further.
func TestPresenceQueuesPastTheClientLimit(t *testing.T) {
	const limit = 10
	r := &Broker{cfg: Config{OutboxLimit: limit, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0)}
	o := newOutbox(r)
	left := func() *wire.Envelope {
		return &wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n1", Payload: wire.PresenceEvent("user_left", "u").JSON}
	}
	chat := &wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n1", Payload: wire.ChatEvent("u", "r", "x").JSON}
	for i := 0; o.len() < limit; i++ {
		if err := o.publish("websocket:room:r", chat); err != nil {
			t.Fatalf("publish %d with %d queued: %v", i, o.len(), err)
		}
	}
	if err := o.publish("websocket:room:r", chat); !errors.Is(err, actors.ErrUnavailable) {
		t.Fatalf("a client's publish past the limit: %v, want unavailable", err)
	}
	queued, accepted := o.len(), 0
	for o.publishPresence("websocket:room:r", left()) == nil {
		accepted++
		if accepted > limit*(presenceSlack+1) {
			break
		}
	}
	if want := limit*(presenceSlack+1) - queued; accepted != want {
		t.Fatalf("%d membership events queued past a full client limit, want %d", accepted, want)
	}
	if got := r.stats.refused.Load(); got != 2 {
		t.Fatalf("refused count %d, want 2 (one publish, one membership event)", got)
	}
}
