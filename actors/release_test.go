package actors_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors"
)

// A session that closes while in a room, and a room that stops while it
// has members, leave the watcher sets of the actors they watched (protoactor
// does not do it for them). Otherwise a long-lived room keeps an entry for
// every session that ever closed in it, and when the room stops, its
// Terminated go to those dead sessions as dead letters: the count of such
// dead letters is what this test reads. TestRoomChurnReleasesMemory in
// transport checks that the stopped actors themselves are collected.
func TestStoppedActorsLeaveWatcherSets(t *testing.T) {
	n := newNode(t)
	sys := n.System()
	var toDead atomic.Int64
	sub := sys.EventStream.Subscribe(func(evt any) {
		if dl, ok := evt.(*actor.DeadLetterEvent); ok {
			if _, ok := dl.Message.(*actor.Terminated); ok {
				toDead.Add(1)
			}
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
		t.Errorf("the stopped lobby sent Terminated to %d closed sessions", c)
	}

	// The anchor re-joins a fresh lobby, then stops.
	waitFor(t, "anchor in a fresh lobby", func() bool {
		id, ok := directory(t, n).Rooms["lobby"]
		return ok && id != lobby && len(roomMembers(t, n, id)) == 1
	})
	before := toDead.Load()
	sys.Root.StopFuture(actors.HandlePID(anchor.pid)).Wait()
	if c := toDead.Load() - before; c != 0 {
		t.Errorf("the stopped anchor sent Terminated to %d stopped rooms", c)
	}
	waitFor(t, "every session and room gone", func() bool {
		return n.Metrics().Sessions.Load() == 0 && n.Metrics().Rooms.Load() == 0
	})
}
