package transport_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// The client protocol of docs/protocol.md sections 2-3 on one node, with
// real gws clients over loopback.
//
// Absence ("nobody else got it") is proved without waiting for a timeout: a
// marker is sent through the same actor after the event under test, and the
// actors deliver in order, so anything wrongly sent would arrive before the
// marker.

// collectUntil returns the events c receives up to and including the first
// one that match accepts.
func collectUntil(t testing.TB, c *wsclient.Client, what string, match func(*wsclient.Event) bool) []*wsclient.Event {
	t.Helper()
	var seen []*wsclient.Event
	_, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool {
		seen = append(seen, e)
		return match(e)
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (saw %d events)", what, err, len(seen))
	}
	return seen
}

// expectAll waits until c has received an event matching each of match, in
// any order, and returns them in the order of match.
func expectAll(t testing.TB, c *wsclient.Client, what string, match ...func(*wsclient.Event) bool) []*wsclient.Event {
	t.Helper()
	found := make([]*wsclient.Event, len(match))
	left := len(match)
	_, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool {
		for i, m := range match {
			if found[i] == nil && m(e) {
				found[i] = e
				left--
				break
			}
		}
		return left == 0
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v (%d of %d found)", what, err, len(match)-left, len(match))
	}
	return found
}

// fields decodes an event's raw JSON, to check its exact shape.
func fields(t testing.TB, e *wsclient.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Raw, &m); err != nil {
		t.Fatalf("event %s: %v", e.Raw, err)
	}
	return m
}

func sameFields(t testing.TB, e *wsclient.Event, want map[string]any) {
	t.Helper()
	got := fields(t, e)
	if len(got) != len(want) {
		t.Fatalf("event %s: want exactly %v", e.Raw, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("event %s: %s = %v, want %v", e.Raw, k, got[k], v)
		}
	}
}

// stillWorks checks that c's connection is open and served.
func stillWorks(t testing.TB, c *wsclient.Client, id string) {
	t.Helper()
	send(t, c, map[string]any{"type": "ping", "id": id})
	expect(t, c, "ack "+id+" on a connection that must still work", isAck(`"`+id+`"`))
}

// hubDirectory asks the node's hub for its directory.
func hubDirectory(t testing.TB, n *testNode) *actors.Directory {
	t.Helper()
	res, err := n.node.System().Root.RequestFuture(n.node.Hub(), &actors.DirectoryQuery{}, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("directory: %v", err)
	}
	return res.(*actors.Directory)
}

// waitUserSessions waits until the hub lists k sessions of user: from then
// on, whatever the hub did about them is queued ahead of any later message.
func waitUserSessions(t testing.TB, n *testNode, user string, k int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d sessions of %s", k, user), 5*time.Second, func() bool {
		c := 0
		for _, u := range hubDirectory(t, n).Sessions {
			if u == user {
				c++
			}
		}
		return c == k
	})
}

func chatFrom(from, content string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == "chat" && e.From == from && e.Content == content }
}

func TestWelcome(t *testing.T) {
	n := startNode(t, nil)
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]{8,}$`)
	ids := map[string]bool{}
	for range 3 {
		c, err := wsclient.Dial(n.wsURL("/ws"), wsclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		ev, err := c.Next(5 * time.Second)
		if err != nil || ev.Event != "welcome" {
			t.Fatalf("first frame: %+v %v", ev, err)
		}
		sameFields(t, ev, map[string]any{"event": "welcome", "client_id": ev.Client, "node": n.node.ID()})
		if !urlSafe.MatchString(ev.Client) || ids[ev.Client] {
			t.Fatalf("assigned client_id %q: want 8+ url-safe characters, unique", ev.Client)
		}
		ids[ev.Client] = true
	}
	c, err := wsclient.Dial(n.wsURL("/ws?client_id=alice"), wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if ev, err := c.Next(5 * time.Second); err != nil || ev.Event != "welcome" || ev.Client != "alice" {
		t.Fatalf("first frame: %+v %v", ev, err)
	}
}

// chat reaches every connection except the sender's own, all of them.
func TestChat(t *testing.T) {
	n := startNode(t, nil)
	a1, a2 := n.dial("alice"), n.dial("alice")
	b1, b2, c := n.dial("bob"), n.dial("bob"), n.dial("carol")

	send(t, a1, map[string]any{"type": "chat", "content": "hello", "id": "c1"})
	expect(t, a1, "ack", isAck(`"c1"`))
	for _, r := range []*wsclient.Client{b1, b2, c} {
		ev := expect(t, r, "alice's chat", chatFrom("alice", "hello"))
		sameFields(t, ev, map[string]any{"event": "chat", "from": "alice", "content": "hello"})
	}
	send(t, c, map[string]any{"type": "chat", "content": "marker"})
	for _, own := range []*wsclient.Client{a1, a2} {
		for _, ev := range collectUntil(t, own, "marker", chatFrom("carol", "marker")) {
			if ev.Event == "chat" && ev.From == "alice" {
				t.Fatalf("alice's chat echoed to one of her connections: %s", ev.Raw)
			}
		}
	}
	// Content is any string, escaped on the way out.
	tricky := "quote\" backslash\\ newline\n tab\t é 😀 \u2028 </script>"
	send(t, b2, map[string]any{"type": "chat", "content": tricky})
	expect(t, a2, "tricky content", chatFrom("bob", tricky))
}

func TestRoomJoinLeaveAndMessages(t *testing.T) {
	n := startNode(t, nil)
	a, b, c, d := n.dial("alice"), n.dial("bob"), n.dial("carol"), n.dial("dave")
	joined := func(user string) func(*wsclient.Event) bool {
		return func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == user && e.Room == "r" }
	}

	send(t, a, map[string]any{"type": "join_room", "room": "r", "id": 1})
	ev := expect(t, a, "the joiner's own user_joined", joined("alice"))
	sameFields(t, ev, map[string]any{"event": "user_joined", "user_id": "alice", "room": "r"})
	expect(t, a, "join ack", isAck("1"))
	send(t, b, map[string]any{"type": "join_room", "room": "r"})
	expect(t, a, "bob joined, seen by alice", joined("bob"))
	expect(t, b, "bob joined, seen by bob", joined("bob"))
	// Joining again is acknowledged and changes nothing.
	send(t, b, map[string]any{"type": "join_room", "room": "r", "id": 2})
	expect(t, b, "second join ack", isAck("2"))

	// Carol joins last: everything the room sent before reached members only,
	// and would be queued ahead of her own user_joined.
	send(t, c, map[string]any{"type": "join_room", "room": "r"})
	for _, e := range collectUntil(t, c, "carol's user_joined", joined("carol")) {
		if e.Event == "user_joined" && e.UserID != "carol" {
			t.Fatalf("a non-member got %s", e.Raw)
		}
	}
	for _, e := range collectUntil(t, b, "carol joined", joined("carol")) {
		if e.Event == "user_joined" && e.UserID == "bob" {
			t.Fatalf("a repeated join announced bob twice")
		}
	}

	// room_message: every member, the sender included; never a non-member.
	send(t, a, map[string]any{"type": "room_message", "room": "r", "content": "to the room", "id": "m"})
	expectAll(t, a, "the sender's ack and copy", isAck(`"m"`), chatFrom("alice", "to the room"))
	for _, m := range []*wsclient.Client{b, c} {
		ev := expect(t, m, "room message", chatFrom("alice", "to the room"))
		if ev.Epoch == "" {
			t.Fatalf("room message without its place in the stream: %s", ev.Raw)
		}
		sameFields(t, ev, map[string]any{"event": "chat", "from": "alice", "room": "r", "content": "to the room", "offset": 1.0, "epoch": ev.Epoch})
	}
	send(t, d, map[string]any{"type": "room_message", "room": "r", "content": "let me in", "id": 3})
	if ev := expect(t, d, "refusal", isEvent("error")); ev.Code != "not_member" || string(ev.ID) != "3" {
		t.Fatalf("non-member room_message: %s", ev.Raw)
	}
	send(t, d, map[string]any{"type": "join_room", "room": "r"})
	for _, e := range collectUntil(t, d, "dave's user_joined", joined("dave")) {
		if e.Event == "chat" {
			t.Fatalf("a non-member received room traffic: %s", e.Raw)
		}
	}

	// leave_room: the remaining members hear user_left; the leaver is out.
	send(t, b, map[string]any{"type": "leave_room", "room": "r", "id": 4})
	expect(t, b, "leave ack", isAck("4"))
	for _, m := range []*wsclient.Client{a, c, d} {
		ev := expect(t, m, "bob left", func(e *wsclient.Event) bool { return e.Event == "user_left" && e.UserID == "bob" })
		sameFields(t, ev, map[string]any{"event": "user_left", "user_id": "bob", "room": "r"})
	}
	send(t, b, map[string]any{"type": "room_message", "room": "r", "content": "still here?", "id": 5})
	if ev := expect(t, b, "refusal", isEvent("error")); ev.Code != "not_member" || string(ev.ID) != "5" {
		t.Fatalf("room_message after leaving: %s", ev.Raw)
	}
	send(t, b, map[string]any{"type": "leave_room", "room": "r", "id": 6})
	if ev := expect(t, b, "refusal", isEvent("error")); ev.Code != "not_member" || string(ev.ID) != "6" {
		t.Fatalf("leaving a room twice: %s", ev.Raw)
	}
	send(t, a, map[string]any{"type": "room_message", "room": "r", "content": "after bob"})
	expect(t, d, "room still works", chatFrom("alice", "after bob"))
}

// Membership is per connection: a user's other tab is not in the room until
// it joins too, and leaving in one tab tells the room that user left.
func TestRoomMembershipIsPerConnection(t *testing.T) {
	n := startNode(t, nil)
	a1, a2, b := n.dial("alice"), n.dial("alice"), n.dial("bob")
	for i, c := range []*wsclient.Client{a1, b} {
		send(t, c, map[string]any{"type": "join_room", "room": "r", "id": i})
		expect(t, c, "join", isAck(fmt.Sprint(i)))
	}
	send(t, a2, map[string]any{"type": "room_message", "room": "r", "content": "x", "id": 9})
	if ev := expect(t, a2, "refusal", isEvent("error")); ev.Code != "not_member" {
		t.Fatalf("other tab: %s", ev.Raw)
	}
	send(t, b, map[string]any{"type": "room_message", "room": "r", "content": "tab one only"})
	expect(t, a1, "joined tab", chatFrom("bob", "tab one only"))
	send(t, a2, map[string]any{"type": "join_room", "room": "r", "id": 10})
	for _, e := range collectUntil(t, a2, "second tab joined", isAck("10")) {
		if e.Event == "chat" {
			t.Fatalf("the tab that had not joined got %s", e.Raw)
		}
	}
	send(t, b, map[string]any{"type": "room_message", "room": "r", "content": "both tabs"})
	expect(t, a1, "tab one", chatFrom("bob", "both tabs"))
	expect(t, a2, "tab two", chatFrom("bob", "both tabs"))
	// One tab leaves: the room says alice left, and her other tab stays in.
	send(t, a1, map[string]any{"type": "leave_room", "room": "r"})
	expect(t, b, "a tab left", func(e *wsclient.Event) bool { return e.Event == "user_left" && e.UserID == "alice" })
	send(t, b, map[string]any{"type": "room_message", "room": "r", "content": "one tab left"})
	expect(t, a2, "the tab that stayed", chatFrom("bob", "one tab left"))
}

func TestDirectMessage(t *testing.T) {
	n := startNode(t, nil)
	a1, a2 := n.dial("alice"), n.dial("alice")
	b1, b2, c := n.dial("bob"), n.dial("bob"), n.dial("carol")

	send(t, a1, map[string]any{"type": "direct_message", "target_user": "bob", "content": "psst", "id": "d1"})
	expect(t, a1, "ack", isAck(`"d1"`))
	for _, r := range []*wsclient.Client{b1, b2} {
		ev := expect(t, r, "direct message", func(e *wsclient.Event) bool { return e.Event == "direct_message" })
		sameFields(t, ev, map[string]any{"event": "direct_message", "from": "alice", "content": "psst"})
	}
	// Nobody else: a broadcast from the same hub, after it, is the marker.
	send(t, b1, map[string]any{"type": "chat", "content": "marker"})
	for _, o := range []*wsclient.Client{a2, c} {
		for _, e := range collectUntil(t, o, "marker", chatFrom("bob", "marker")) {
			if e.Event == "direct_message" {
				t.Fatalf("a direct message to bob reached another user: %s", e.Raw)
			}
		}
	}
	// To oneself: every connection of the sender, the sending one included.
	send(t, a2, map[string]any{"type": "direct_message", "target_user": "alice", "content": "note to self", "id": 1})
	toSelf := func(e *wsclient.Event) bool { return e.Event == "direct_message" && e.Content == "note to self" }
	expect(t, a1, "note to self", toSelf)
	expectAll(t, a2, "note to self and its ack", toSelf, isAck("1"))

	send(t, a1, map[string]any{"type": "direct_message", "target_user": "nobody", "content": "hello?", "id": 2})
	ev := expect(t, a1, "offline", isEvent("error"))
	if ev.Code != "user_offline" || string(ev.ID) != "2" || ev.Message == "" {
		t.Fatalf("direct to an unknown user: %s", ev.Raw)
	}
	_ = b1.Close()
	_ = b2.Close()
	waitUserSessions(t, n, "bob", 0)
	send(t, a1, map[string]any{"type": "direct_message", "target_user": "bob", "content": "gone?", "id": 3})
	if ev := expect(t, a1, "offline", isEvent("error")); ev.Code != "user_offline" || string(ev.ID) != "3" {
		t.Fatalf("direct to a user who left: %s", ev.Raw)
	}
	stillWorks(t, a1, "after")
}

func TestPingPong(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("alice")
	send(t, c, map[string]any{"type": "ping"})
	ev := expect(t, c, "pong", isEvent("pong"))
	if string(ev.Raw) != `{"event":"pong"}` {
		t.Fatalf("pong: %s", ev.Raw)
	}
	// A pong is accepted silently: the next event is the answer to the ping
	// that follows it.
	send(t, c, map[string]any{"type": "pong"})
	send(t, c, map[string]any{"type": "ping", "id": "p1"})
	if ev, err := c.Next(5 * time.Second); err != nil || ev.Event != "pong" {
		t.Fatalf("after a pong: %+v %v", ev, err)
	}
	expect(t, c, "ping ack", isAck(`"p1"`))
	// With an id, a pong is acknowledged and still answered with nothing else.
	send(t, c, map[string]any{"type": "pong", "id": "p2"})
	if ev, err := c.Next(5 * time.Second); err != nil || !isAck(`"p2"`)(ev) {
		t.Fatalf("pong with an id: %+v %v", ev, err)
	}
}

// Any message may carry an id, a string or a number of at most 64
// characters; it comes back in the ack, or in the error.
func TestMessageIDs(t *testing.T) {
	n := startNode(t, nil)
	c, other := n.dial("alice"), n.dial("bob")
	good := []string{`"abc"`, `42`, `-3.5`, `1e3`, `0`, `""`, `"` + strings.Repeat("x", 64) + `"`,
		`"` + strings.Repeat("é", 64) + `"`, strings.Repeat("7", 64)}
	for _, id := range good {
		if err := c.SendText(`{"type":"ping","id":` + id + `}`); err != nil {
			t.Fatal(err)
		}
		ev := expect(t, c, "ack of "+id, isEvent("ack"))
		sameFields(t, ev, map[string]any{"event": "ack", "id": fields(t, ev)["id"]})
		var want, got any
		_ = json.Unmarshal([]byte(id), &want)
		_ = json.Unmarshal(ev.ID, &got)
		if want != got {
			t.Fatalf("id %s came back as %s", id, ev.ID)
		}
	}
	bad := []string{`"` + strings.Repeat("x", 65) + `"`, strings.Repeat("7", 65), `true`, `{}`, `[1]`}
	for _, id := range bad {
		if err := c.SendText(`{"type":"ping","id":` + id + `}`); err != nil {
			t.Fatal(err)
		}
		ev := expect(t, c, "refusal of id "+id, func(e *wsclient.Event) bool { return e.Event == "error" || e.Event == "ack" })
		if ev.Code != "invalid_message" || ev.ID != nil {
			t.Fatalf("id %s: %s, want invalid_message without an id", id, ev.Raw)
		}
	}
	// Every command acknowledges its id.
	cmds := []map[string]any{
		{"type": "chat", "content": "x"},
		{"type": "join_room", "room": "r"},
		{"type": "room_message", "room": "r", "content": "x"},
		{"type": "leave_room", "room": "r"},
		{"type": "direct_message", "target_user": "bob", "content": "x"},
		{"type": "ping"},
		{"type": "pong"},
	}
	for i, cmd := range cmds {
		cmd["id"] = fmt.Sprint("k", i)
		send(t, c, cmd)
		expect(t, c, fmt.Sprintf("ack of %s", cmd["type"]), isAck(fmt.Sprintf(`"k%d"`, i)))
	}
	_ = other
}

// user_connected and user_disconnected announce a user's first connection
// opening and last one closing, to everyone but that user.
func TestPresence(t *testing.T) {
	n := startNode(t, nil)
	a, carol := n.dial("alice"), n.dial("carol")
	connected := func(user string) func(*wsclient.Event) bool {
		return func(e *wsclient.Event) bool { return e.Event == "user_connected" && e.UserID == user }
	}
	disconnected := func(user string) func(*wsclient.Event) bool {
		return func(e *wsclient.Event) bool { return e.Event == "user_disconnected" && e.UserID == user }
	}
	b1 := n.dial("bob")
	ev := expect(t, a, "bob connected", connected("bob"))
	sameFields(t, ev, map[string]any{"event": "user_connected", "user_id": "bob"})
	b2 := n.dial("bob")
	waitUserSessions(t, n, "bob", 2)
	marker := func(text string) {
		send(t, carol, map[string]any{"type": "chat", "content": text})
		for _, c := range []*wsclient.Client{a, b1, b2} {
			for _, e := range collectUntil(t, c, text, chatFrom("carol", text)) {
				if e.UserID == "bob" {
					t.Fatalf("%s: unexpected %s", text, e.Raw)
				}
			}
		}
	}
	marker("after bob's second connection") // no second user_connected, none to bob himself

	_ = b1.Close()
	waitUserSessions(t, n, "bob", 1)
	send(t, carol, map[string]any{"type": "chat", "content": "after one tab closed"})
	for _, c := range []*wsclient.Client{a, b2} {
		for _, e := range collectUntil(t, c, "marker", chatFrom("carol", "after one tab closed")) {
			if e.UserID == "bob" {
				t.Fatalf("bob still has a connection, yet: %s", e.Raw)
			}
		}
	}
	b2.Abort() // however the last connection ends
	ev = expect(t, a, "bob disconnected", disconnected("bob"))
	sameFields(t, ev, map[string]any{"event": "user_disconnected", "user_id": "bob"})
	expect(t, carol, "bob disconnected", disconnected("bob"))
	waitFor(t, "users back to two", 5*time.Second, func() bool { return n.node.Metrics().Users.Load() == 2 })
}

// Frames a client sent right before its close frame are handled before its
// session ends: the read side delivers a connection's end behind its last
// frames. (The client here completes the close handshake: one that closes
// its socket with unread data makes its kernel reset the connection, and
// the node's kernel then drops what it had not read yet.)
func TestMessagesBeforeCloseAreDelivered(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	a := n.dial("alice")
	send(t, a, map[string]any{"type": "join_room", "room": "r", "id": "j"})
	expect(t, a, "join ack", isAck(`"j"`))
	b := wireSession(t, n, "bob")
	b.write(t, maskedFrame(true, 0x1, []byte(`{"type":"join_room","room":"r","id":"j"}`)))
	b.ack(t, `"j"`)
	const burst = 200
	frames := make([][]byte, 0, burst+1)
	for i := range burst {
		frames = append(frames, maskedFrame(true, 0x1, []byte(fmt.Sprintf(`{"type":"room_message","room":"r","content":"m%d"}`, i))))
	}
	frames = append(frames, maskedFrame(true, 0x8, []byte{0x03, 0xE8}))
	b.write(t, bytes.Join(frames, nil))
	b.closed(t, 1000)
	// The room hears of bob's end as a system message, which may overtake
	// his last room messages in its mailbox: user_left is not ordered
	// against them, but every message arrives, in order.
	next, left := 0, false
	if _, err := a.WaitFor(10*time.Second, func(e *wsclient.Event) bool {
		switch {
		case e.Event == "chat" && e.Room == "r":
			if e.Content != fmt.Sprint("m", next) {
				t.Fatalf("message %d is %q", next, e.Content)
			}
			next++
		case e.Event == "user_left" && e.UserID == "bob":
			left = true
		}
		return next == burst && left
	}); err != nil {
		t.Fatalf("alice got %d of bob's %d messages sent before his close (user_left: %v): %v", next, burst, left, err)
	}
}
