package transport_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Chaos on one node: Session and Room actors are stopped or crashed from
// outside (Node.Kill) while traffic flows. Afterwards rooms, counts and
// goroutines must come back clean, and the survivors must not notice more
// than the protocol says: user_left for a killed session, nothing at all for
// a killed room, which its members re-create by re-joining.

// sessionOf returns the session actor id of user's only session.
func sessionOf(t testing.TB, n *testNode, user string) string {
	t.Helper()
	for id, u := range hubDirectory(t, n).Sessions {
		if u == user {
			return id
		}
	}
	t.Fatalf("no session of %s", user)
	return ""
}

// roomOf returns the actor id of room, waiting until it exists.
func roomOf(t testing.TB, n *testNode, room string) string {
	t.Helper()
	var id string
	waitFor(t, "room "+room, 5*time.Second, func() bool {
		var ok bool
		id, ok = hubDirectory(t, n).Rooms[room]
		return ok
	})
	return id
}

// roomMembersOf lists the users in room's actor, sorted.
func roomMembersOf(t testing.TB, n *testNode, room string) []string {
	t.Helper()
	id := roomOf(t, n, room)
	res, err := n.node.System().Root.RequestFuture(n.node.System().NewLocalPID(id), &actors.RoomQuery{}, 5*time.Second).Result()
	if err != nil {
		return nil // stopped meanwhile
	}
	dir := hubDirectory(t, n)
	var users []string
	for _, s := range res.(*actors.RoomMembers).Members {
		users = append(users, dir.Sessions[s])
	}
	sort.Strings(users)
	return users
}

// joinAll puts every client in room, then has the last one send a message
// there that every member waits for: the room's user_joined events, sent
// before it, are consumed by then.
func joinAll(t testing.TB, room string, cs ...*wsclient.Client) {
	t.Helper()
	for _, c := range cs {
		send(t, c, map[string]any{"type": "join_room", "room": room, "id": "join-" + room})
		expect(t, c, "join "+room, isAck(`"join-`+room+`"`))
	}
	settled := "settled " + room
	send(t, cs[len(cs)-1], map[string]any{"type": "room_message", "room": room, "content": settled})
	for _, c := range cs {
		expect(t, c, settled, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == settled })
	}
}

// stream sends count room messages from c in the background, tagged
// tag-0, tag-1, ...; wait blocks until all are written.
func stream(t testing.TB, c *wsclient.Client, room, tag string, count int) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range count {
			if err := c.SendJSON(map[string]any{"type": "room_message", "room": room, "content": fmt.Sprint(tag, "-", i)}); err != nil {
				return
			}
			if i%20 == 19 {
				time.Sleep(time.Millisecond) // let kills land mid-stream
			}
		}
	}()
	return wg.Wait
}

// receiveAll checks that c gets tag-0 .. tag-(count-1) in order, and
// returns the other events it saw meanwhile.
func receiveAll(t testing.TB, c *wsclient.Client, tag string, count int) []*wsclient.Event {
	t.Helper()
	var other []*wsclient.Event
	next := 0
	if count == 0 {
		return nil
	}
	collectUntil(t, c, fmt.Sprint("all of ", tag), func(e *wsclient.Event) bool {
		if e.Event == "chat" && strings.HasPrefix(e.Content, tag+"-") {
			if e.Content != fmt.Sprint(tag, "-", next) {
				t.Fatalf("got %s, want %s-%d: lost or out of order", e.Content, tag, next)
			}
			next++
			return next == count
		}
		other = append(other, e)
		return false
	})
	return other
}

func metricsAre(n *testNode, sessions, users, rooms int64) bool {
	m := n.node.Metrics()
	return m.Sessions.Load() == sessions && m.Users.Load() == users && m.Rooms.Load() == rooms
}

func TestKillSessionWhileTrafficFlows(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "stopped", true: "crashed"}[crash], func(t *testing.T) {
			t.Cleanup(goroutineBaseline(t))
			n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
			a, b, victim := n.dial("alice"), n.dial("bob"), n.dial("victim")
			joinAll(t, "r", a, b, victim)

			const count = 300
			done := stream(t, a, "r", "m", count)
			if !n.node.Kill(sessionOf(t, n, "victim"), crash) {
				t.Fatal("victim's session not found")
			}
			if code, err := victim.WaitClosed(5 * time.Second); err != nil || code != uint16(wire.CloseInternal) {
				t.Fatalf("killed session closed with %d (%v), want 1011", code, err)
			}
			done()
			left, gone := false, false
			for _, e := range receiveAll(t, b, "m", count) {
				left = left || e.Event == "user_left" && e.UserID == "victim"
				gone = gone || e.Event == "user_disconnected" && e.UserID == "victim"
			}
			if !left || !gone {
				t.Fatalf("the victim's departure: user_left %v, user_disconnected %v", left, gone)
			}
			waitFor(t, "counts back", 5*time.Second, func() bool { return metricsAre(n, 2, 2, 1) })
			if got := roomMembersOf(t, n, "r"); strings.Join(got, ",") != "alice,bob" {
				t.Fatalf("room members %v", got)
			}
			if crash && n.node.Metrics().SessionPanic.Load() != 1 {
				t.Fatalf("session panics %d", n.node.Metrics().SessionPanic.Load())
			}
			// The user comes back: a fresh session, announced again.
			n.dial("victim")
			expect(t, b, "victim back", func(e *wsclient.Event) bool { return e.Event == "user_connected" && e.UserID == "victim" })
		})
	}
}

// A stopped room is re-created by its members' silent re-join: they keep
// receiving room messages and are told nothing. Messages published while
// the room was gone may be lost; everything after its return arrives.
func TestKillRoomWhileTrafficFlows(t *testing.T) {
	t.Cleanup(goroutineBaseline(t))
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	a, b, c := n.dial("alice"), n.dial("bob"), n.dial("carol")
	joinAll(t, "r", a, b, c)
	old := roomOf(t, n, "r")

	done := stream(t, a, "r", "during", 200)
	if !n.node.Kill(old, false) {
		t.Fatal("room not found")
	}
	done()
	waitFor(t, "the room re-created with every member", 5*time.Second, func() bool {
		id, ok := hubDirectory(t, n).Rooms["r"]
		return ok && id != old && strings.Join(roomMembersOf(t, n, "r"), ",") == "alice,bob,carol"
	})
	const after = 50
	stream(t, a, "r", "after", after)()
	for _, m := range []*wsclient.Client{b, c} {
		for _, e := range receiveAll(t, m, "after", after) {
			if e.Event == "user_joined" || e.Event == "user_left" {
				t.Fatalf("a member was told about the room's re-creation: %s", e.Raw)
			}
		}
	}
	waitFor(t, "counts", 5*time.Second, func() bool { return metricsAre(n, 3, 3, 1) })
}

// A room or hub that panics is resumed: no member notices, no message is
// lost, no other room is touched. A room that keeps panicking is replaced.
func TestPanickingRoomAndHubLoseNothing(t *testing.T) {
	t.Cleanup(goroutineBaseline(t))
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	a, b, c, d := n.dial("alice"), n.dial("bob"), n.dial("carol"), n.dial("dave")
	joinAll(t, "r1", a, b)
	joinAll(t, "r2", c, d)
	r1, r2 := roomOf(t, n, "r1"), roomOf(t, n, "r2")

	const count = 200
	done1 := stream(t, a, "r1", "one", count)
	done2 := stream(t, c, "r2", "two", count)
	n.node.Kill(r1, true)
	n.node.Kill(n.node.Hub().Id, true)
	n.node.Kill(r1, true)
	done1()
	done2()
	for _, e := range receiveAll(t, b, "one", count) {
		if e.Event == "user_left" || e.Event == "user_joined" {
			t.Fatalf("a resumed room told its members %s", e.Raw)
		}
	}
	receiveAll(t, d, "two", count)
	if roomOf(t, n, "r1") != r1 || roomOf(t, n, "r2") != r2 {
		t.Fatal("a resumed room was replaced")
	}
	if m := n.node.Metrics(); m.RoomPanic.Load() != 2 || m.HubPanic.Load() != 1 {
		t.Fatalf("room panics %d, hub panics %d", m.RoomPanic.Load(), m.HubPanic.Load())
	}

	// Past the panic limit the room is stopped; r2 carries on throughout.
	done2 = stream(t, c, "r2", "three", count)
	for range 11 {
		n.node.Kill(r1, true)
	}
	done2()
	receiveAll(t, d, "three", count)
	waitFor(t, "r1 replaced", 5*time.Second, func() bool {
		id, ok := hubDirectory(t, n).Rooms["r1"]
		return ok && id != r1 && strings.Join(roomMembersOf(t, n, "r1"), ",") == "alice,bob"
	})
	stream(t, a, "r1", "four", 20)()
	receiveAll(t, b, "four", 20)
	if roomOf(t, n, "r2") != r2 {
		t.Fatal("r2 was disturbed")
	}
	// Chat, presence and direct messages still go through the hub.
	send(t, a, map[string]any{"type": "direct_message", "target_user": "dave", "content": "hub ok", "id": "dm"})
	expect(t, a, "ack", isAck(`"dm"`))
	expect(t, d, "direct message", func(e *wsclient.Event) bool { return e.Content == "hub ok" })
}

// Many kills of every kind while several clients talk; killed users come
// back. At the end everything is closed: no session, user, room or
// goroutine is left over, and the directory is empty.
func TestChaosComesBackClean(t *testing.T) {
	t.Cleanup(goroutineBaseline(t))
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	rooms := []string{"red", "green", "blue"}
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	clients := map[string]*wsclient.Client{}
	connectUser := func(u string) {
		i := int(u[1] - '0')
		c := n.dial(u)
		clients[u] = c
		joinAll(t, rooms[i%3], c)
		joinAll(t, rooms[(i+1)%3], c)
	}
	for _, u := range users {
		connectUser(u)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 15 {
		var waits []func()
		for _, u := range users {
			i := int(u[1] - '0')
			waits = append(waits, stream(t, clients[u], rooms[i%3], fmt.Sprint("r", round, u), 30))
		}
		victim := users[rng.IntN(len(users))]
		switch rng.IntN(4) {
		case 0, 1: // a session, stopped or crashed; its user reconnects
			n.node.Kill(sessionOf(t, n, victim), rng.IntN(2) == 0)
			_, _ = clients[victim].WaitClosed(5 * time.Second)
			for _, w := range waits {
				w()
			}
			connectUser(victim)
		case 2: // a room, stopped
			n.node.Kill(roomOf(t, n, rooms[rng.IntN(3)]), false)
		case 3: // a room or the hub, crashed
			if rng.IntN(2) == 0 {
				n.node.Kill(n.node.Hub().Id, true)
			} else {
				n.node.Kill(roomOf(t, n, rooms[rng.IntN(3)]), true)
			}
		}
		for _, w := range waits {
			w()
		}
	}

	// Every room holds exactly the users who joined it, and works.
	for ri, room := range rooms {
		var want []string
		for _, u := range users {
			i := int(u[1] - '0')
			if i%3 == ri || (i+1)%3 == ri {
				want = append(want, u)
			}
		}
		waitFor(t, "members of "+room, 5*time.Second, func() bool {
			return strings.Join(roomMembersOf(t, n, room), ",") == strings.Join(want, ",")
		})
		sender := clients[want[0]]
		send(t, sender, map[string]any{"type": "room_message", "room": room, "content": "final " + room})
		for _, u := range want {
			expect(t, clients[u], "final message", chatFrom(want[0], "final "+room))
		}
	}
	waitFor(t, "counts", 5*time.Second, func() bool { return metricsAre(n, 6, 6, 3) })

	for _, c := range clients {
		_ = c.Close()
	}
	waitFor(t, "everything gone", 5*time.Second, func() bool {
		d := hubDirectory(t, n)
		return metricsAre(n, 0, 0, 0) && len(d.Sessions) == 0 && len(d.Rooms) == 0
	})
}
