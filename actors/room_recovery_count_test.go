package actors_test

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A join with since whose recovery read outlasts the session's join retry
// (the retry, a plain join, makes the session a member), followed by a
// leave and the same join with since again while the first read is still
// in flight: the room answers the second through the first, and must still
// count it as handled. The hub retires a room only when the room has
// handled every join the hub forwarded; one uncounted join kept the room,
// and its broker subscription, for the node's life (a flood of such joins
// on a room of big publications left rooms behind on a real node).
func TestRecoveryRetriesLeaveNoRoomBehind(t *testing.T) {
	b := newScriptBroker()
	n := newNode(t, func(c *actors.Config) { c.Broker = b; c.JoinRetry = 50 * time.Millisecond })
	bob := connect(t, n, "bob")
	bob.send(`{"type":"join_room","room":"r","id":1,"since":{"offset":0,"epoch":"e1"}}`)
	pos := b.nextRead(t)
	if !pos.q.PositionOnly {
		t.Fatalf("first read %+v, want the position", pos.q)
	}
	pos.done(actors.StreamRead{Pos: wire.Position{Offset: 5, Epoch: "e1"}}, nil)
	recovery := b.nextRead(t)
	if recovery.q.After != 0 || !recovery.q.Client {
		t.Fatalf("second read %+v, want the recovery", recovery.q)
	}
	// The read is slow: the session's retry makes bob a member meanwhile.
	bob.conn.waitEvent(t, "the join's ack (through its retry)", ackOf("1"))
	bob.send(`{"type":"leave_room","room":"r","id":2}`)
	bob.conn.waitEvent(t, "the leave's ack", ackOf("2"))
	// The second join with since reaches the room while the first read is
	// in flight: bob's session has sent it to the hub once it handles the
	// command after it, and carol's join, which the hub forwards after it,
	// is answered only once the room has handled it.
	in := n.Metrics().MessagesIn.Load()
	bob.send(`{"type":"join_room","room":"r","id":3,"since":{"offset":0,"epoch":"e1"}}`)
	bob.send(`{"type":"ping"}`)
	deadline := time.Now().Add(5 * time.Second)
	for n.Metrics().MessagesIn.Load() < in+2 {
		if time.Now().After(deadline) {
			t.Fatal("bob's session did not take the join and the ping after it")
		}
		time.Sleep(time.Millisecond)
	}
	carol := connect(t, n, "carol")
	carol.send(`{"type":"join_room","room":"r","id":1}`)
	carol.conn.waitEvent(t, "carol's ack", ackOf("1"))
	// The first read answers now, for the second join too.
	recovery.done(actors.StreamRead{Pos: wire.Position{Offset: 5, Epoch: "e1"}, Pubs: streamPubs("e1", 1, 5)}, nil)
	bob.conn.waitEvent(t, "the second join's ack", ackOf("3"))
	bob.send(`{"type":"leave_room","room":"r","id":4}`)
	bob.conn.waitEvent(t, "the second leave's ack", ackOf("4"))
	carol.send(`{"type":"leave_room","room":"r","id":2}`)
	carol.conn.waitEvent(t, "carol's leave", ackOf("2"))
	// Later reads (none is expected) are answered, so that nothing waits.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case rd := <-b.reads:
				rd.done(actors.StreamRead{Pos: wire.Position{Offset: 5, Epoch: "e1"}}, nil)
			case <-stop:
				return
			}
		}
	}()
	deadline = time.Now().Add(5 * time.Second)
	for n.Metrics().Rooms.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms live after bob left, want 0: a join the room did not count keeps it", n.Metrics().Rooms.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
