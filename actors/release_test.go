package actors_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A session that closes while in a room leaves it, and a room that stops
// while it has members tells those members only: a long-lived room keeps
// nothing of the sessions that closed in it, and when it stops, nothing
// of it goes to those dead sessions as dead letters. The count of such
// dead letters (an end notice of any kind: protoactor's Terminated, or
// the project's roomGone, roomLeave, roomEnded) is what this test reads.
// TestRoomChurnReleasesMemory in transport checks that the stopped actors
// themselves are collected.
func TestEndNoticesReachOnlyLiveActors(t *testing.T) {
	n := newNode(t)
	sys := n.System()
	var toDead atomic.Int64
	notices := map[string]bool{"*actor.Terminated": true, "*actors.roomGone": true, "*actors.roomLeave": true, "*actors.roomEnded": true}
	sub := sys.EventStream.Subscribe(func(evt any) {
		if dl, ok := evt.(*actor.DeadLetterEvent); ok && notices[fmt.Sprintf("%T", dl.Message)] {
			toDead.Add(1)
		}
	})
	defer sys.EventStream.Unsubscribe(sub)

	anchor := connect(t, n, "anchor")
	anchor.send(`{"type":"join_room","room":"lobby","id":1}`)
	anchor.conn.waitEvent(t, "anchor joined", ackOf("1"))
	const visitors = 20
	for i := range visitors {
		v := connect(t, n, "visitor"+strconv.Itoa(i))
		v.send(`{"type":"join_room","room":"lobby","id":1}`)
		v.conn.waitEvent(t, "visitor joined", ackOf("1"))
		n.Deliver(v.pid, &actors.SocketClosed{})
	}
	waitFor(t, "visitors gone", func() bool { return n.Metrics().Sessions.Load() == 1 })
	waitFor(t, "lobby has the anchor alone", func() bool { return len(roomMembers(t, n, directory(t, n).Rooms["lobby"])) == 1 })

	// The lobby is stopped from outside with the anchor in it. The future
	// watches it last, so once it answers every Terminated has been sent.
	lobby := directory(t, n).Rooms["lobby"]
	sys.Root.StopFuture(sys.NewLocalPID(lobby)).Wait()
	if c := toDead.Load(); c != 0 {
		t.Errorf("the stopped lobby sent %d end notices to closed sessions", c)
	}

	// The anchor re-joins a fresh lobby, then stops.
	waitFor(t, "anchor in a fresh lobby", func() bool {
		id, ok := directory(t, n).Rooms["lobby"]
		return ok && id != lobby && len(roomMembers(t, n, id)) == 1
	})
	before := toDead.Load()
	sys.Root.StopFuture(actors.HandlePID(anchor.pid)).Wait()
	if c := toDead.Load() - before; c != 0 {
		t.Errorf("the stopped anchor sent %d end notices to stopped rooms", c)
	}
	waitFor(t, "every session and room gone", func() bool {
		return n.Metrics().Sessions.Load() == 0 && n.Metrics().Rooms.Load() == 0
	})
}

// A join the room holds (here while it reads its stream position) whose
// session stops meanwhile is not admitted when the room lets it in: the
// session's leave came first and found no member to remove, so a member
// admitted then would stay for good, and the room with it.
func TestStoppedJoinerIsNotAdmitted(t *testing.T) {
	b := newScriptBroker()
	n := newNode(t, func(c *actors.Config) { c.Broker = b })
	bob := connect(t, n, "bob")
	bob.send(`{"type":"join_room","room":"held","id":1}`)
	rd := b.nextRead(t) // the room holds the join until this is answered
	n.Deliver(bob.pid, &actors.SocketClosed{})
	waitFor(t, "bob's session gone", func() bool { return n.Metrics().Sessions.Load() == 0 })
	rd.done(actors.StreamRead{Pos: wire.Position{Epoch: "e1"}}, nil)
	waitFor(t, "the room gone, with no member", func() bool { return n.Metrics().Rooms.Load() == 0 })
}
