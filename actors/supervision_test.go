package actors_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
)

// twoInRoom connects alice and bob and puts both in room r.
func twoInRoom(t *testing.T, n *actors.Node) (a, b *peer, roomID string) {
	t.Helper()
	a, b = connect(t, n, "alice"), connect(t, n, "bob")
	for _, p := range []*peer{a, b} {
		p.send(`{"type":"join_room","room":"r","id":"j"}`)
		p.conn.waitEvent(t, "joined", ackOf(`"j"`))
	}
	// bob's ack can overtake alice's copy of his user_joined.
	a.conn.waitEvent(t, "bob's user_joined", func(e event) bool { return e.Event == "user_joined" && e.UserID == "bob" })
	return a, b, directory(t, n).Rooms["r"]
}

// roomTalks checks that a room message from a reaches b, tagged with seq.
func roomTalks(t *testing.T, a, b *peer, seq int) {
	t.Helper()
	content := "m" + strconv.Itoa(seq)
	a.send(`{"type":"room_message","room":"r","content":"` + content + `"}`)
	b.conn.waitEvent(t, "room message "+content, func(e event) bool { return e.Event == "chat" && e.Content == content })
}

func TestRoomPanicIsResumedWithItsMembers(t *testing.T) {
	n := newNode(t)
	a, b, roomID := twoInRoom(t, n)
	if !n.Kill(roomID, true) {
		t.Fatal("room not found")
	}
	waitFor(t, "panic handled", func() bool { return n.Metrics().RoomPanic.Load() == 1 })
	roomTalks(t, a, b, 1)
	if id := directory(t, n).Rooms["r"]; id != roomID {
		t.Fatalf("room actor replaced (%s -> %s): a resumed room keeps its identity", roomID, id)
	}
	if m := roomMembers(t, n, roomID); len(m) != 2 {
		t.Fatalf("members after a panic: %v", m)
	}
}

// Past roomMaxPanics within the window the room is stopped; its members,
// the source of truth, re-join a fresh room without user_joined noise.
func TestRoomPanickingRepeatedlyIsReplaced(t *testing.T) {
	n := newNode(t)
	a, b, roomID := twoInRoom(t, n)
	other := connect(t, n, "carol")
	other.send(`{"type":"join_room","room":"quiet","id":"q"}`)
	other.conn.waitEvent(t, "joined", ackOf(`"q"`))
	quietID := directory(t, n).Rooms["quiet"]

	joinedBefore := map[*peer]int{a: a.conn.count(t, is("user_joined")), b: b.conn.count(t, is("user_joined"))}
	for range 11 {
		n.Kill(roomID, true)
	}
	waitFor(t, "a fresh room", func() bool { id, ok := directory(t, n).Rooms["r"]; return ok && id != roomID })
	roomTalks(t, a, b, 1)
	roomTalks(t, b, a, 2)
	if m := roomMembers(t, n, directory(t, n).Rooms["r"]); len(m) != 2 {
		t.Fatalf("members of the fresh room: %v", m)
	}
	for _, p := range []*peer{a, b} {
		if c := p.conn.count(t, is("user_joined")); c != joinedBefore[p] {
			t.Fatalf("%s saw %d user_joined, had %d: re-joins must be silent", p.user, c, joinedBefore[p])
		}
		if c := p.conn.count(t, is("user_left")); c != 0 {
			t.Fatalf("%s saw %d user_left", p.user, c)
		}
	}
	if directory(t, n).Rooms["quiet"] != quietID || len(roomMembers(t, n, quietID)) != 1 {
		t.Fatal("another room was disturbed")
	}
	waitFor(t, "two rooms", func() bool { return n.Metrics().Rooms.Load() == 2 })
}

func TestRoomStoppedFromOutsideIsRecreated(t *testing.T) {
	n := newNode(t)
	a, b, roomID := twoInRoom(t, n)
	if !n.Kill(roomID, false) {
		t.Fatal("room not found")
	}
	waitFor(t, "a fresh room", func() bool { id, ok := directory(t, n).Rooms["r"]; return ok && id != roomID })
	roomTalks(t, a, b, 1)
	waitFor(t, "one room", func() bool { return n.Metrics().Rooms.Load() == 1 })
}

// A hub panic is resumed: the directory survives and the node keeps routing.
func TestHubPanicKeepsDirectory(t *testing.T) {
	n := newNode(t)
	a, b, _ := twoInRoom(t, n)
	before := directory(t, n).String()
	if !n.Kill(n.Hub().Id, true) {
		t.Fatal("hub not found")
	}
	waitFor(t, "panic handled", func() bool { return n.Metrics().HubPanic.Load() == 1 })
	if after := directory(t, n).String(); after != before {
		t.Fatalf("directory changed by a hub panic:\n%s\n%s", before, after)
	}
	roomTalks(t, a, b, 1)
	a.send(`{"type":"chat","content":"still here"}`)
	b.conn.waitEvent(t, "chat", func(e event) bool { return e.Event == "chat" && e.Content == "still here" })
	connect(t, n, "carol")
	a.conn.waitEvent(t, "carol connected", func(e event) bool { return e.Event == "user_connected" && e.UserID == "carol" })
}

// The last member leaving stops the room; a join racing with that stop lands
// in a live room.
func TestRoomStopsWhenEmpty(t *testing.T) {
	n := newNode(t)
	a, b, _ := twoInRoom(t, n)
	a.send(`{"type":"leave_room","room":"r"}`)
	b.conn.waitEvent(t, "alice left", func(e event) bool { return e.Event == "user_left" && e.UserID == "alice" })
	for i := range 20 {
		// Leave and re-join back to back: the room empties and fills again
		// while its idle notice is on the way to the hub.
		b.send(`{"type":"leave_room","room":"r"}`)
		b.send(`{"type":"join_room","room":"r","id":` + strconv.Itoa(i) + `}`)
		b.conn.waitEvent(t, "re-joined", ackOf(strconv.Itoa(i)))
		roomTalks(t, b, b, i)
	}
	b.send(`{"type":"leave_room","room":"r","id":"last"}`)
	b.conn.waitEvent(t, "left", ackOf(`"last"`))
	waitFor(t, "room stopped", func() bool { return n.Metrics().Rooms.Load() == 0 && len(directory(t, n).Rooms) == 0 })
}

// A server-side publish to a room whose actor was just stopped does not
// wait on the dead actor: the hub treats it as absent until the members
// have re-joined a fresh one. With a join retry of a minute, waiting on it
// would outlast the publish's context.
func TestPublishToAJustStoppedRoomDoesNotWait(t *testing.T) {
	n := newNode(t, func(c *actors.Config) { c.JoinRetry = time.Minute })
	a, b, _ := twoInRoom(t, n)
	for i := range 20 {
		roomID := directory(t, n).Rooms["r"]
		if !n.Kill(roomID, false) {
			t.Fatalf("round %d: room %s not found", i, roomID)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := n.PublishRoom(ctx, "r", []byte(`{"event":"notice","n":`+strconv.Itoa(i)+`}`))
		cancel()
		if err != nil {
			t.Fatalf("round %d: publish to a just-stopped room: %v", i, err)
		}
		waitFor(t, "a fresh room", func() bool { id, ok := directory(t, n).Rooms["r"]; return ok && id != roomID })
		waitFor(t, "both members back", func() bool { return len(roomMembers(t, n, directory(t, n).Rooms["r"])) == 2 })
	}
	roomTalks(t, a, b, 1)
}
