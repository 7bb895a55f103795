package actors_test

import (
	"fmt"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
)

// Sessions that end as soon as they start (the socket closes, the session
// is stopped or crashes from outside, before the hub has handled their
// registration) leave nothing in the hub: the session's end reaches it
// after its registration, whatever the hub's backlog, and every user
// announced as connected is announced as gone.
func TestHubForgetsSessionsThatEndAtOnce(t *testing.T) {
	n := newNode(t)
	watcher := connect(t, n, "watcher")
	const sessions = 300
	ids := make([]string, 0, sessions)
	for i := 0; i < sessions; i++ {
		pid := n.Connect(newFakeConn(), actors.SessionOptions{User: fmt.Sprintf("u%d", i)})
		ids = append(ids, pid.ID())
		switch i % 3 {
		case 0:
			n.Deliver(pid, &actors.SocketClosed{})
		case 1:
			n.Kill(pid.ID(), false)
		default:
			n.Kill(pid.ID(), true)
		}
	}
	// A session counts itself out (Sessions) after it has told the hub, and
	// leaves protoactor's registry before either.
	waitFor(t, "every session stopped", func() bool {
		for _, id := range ids {
			if _, live := n.System().ProcessRegistry.GetLocal(id); live {
				return false
			}
		}
		return n.Metrics().Sessions.Load() == 1
	})
	if d := directory(t, n); len(d.Sessions) != 1 || n.Metrics().Users.Load() != 1 {
		t.Fatalf("the hub still holds %d sessions and %d users, want the watcher alone", len(d.Sessions), n.Metrics().Users.Load())
	}
	// The hub sent its events to the watcher before it answered the
	// directory; a command sent now is answered after them.
	watcher.send(`{"type":"ping","id":"m"}`)
	watcher.conn.waitEvent(t, "the marker's ack", ackOf(`"m"`))
	connected, gone := watcher.conn.count(t, is("user_connected")), watcher.conn.count(t, is("user_disconnected"))
	t.Logf("%d of %d users announced as connected and as gone", connected, sessions)
	if connected != gone {
		t.Fatalf("%d users announced as connected, %d as gone", connected, gone)
	}
}
