package transport_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Every error code that can happen on one node, each followed by proof that
// the connection still works: errors never close a connection by themselves.

// expectCode waits for c's next error or ack and checks it is error code
// carrying id (raw JSON, "" for none).
func expectCode(t testing.TB, c *wsclient.Client, code wire.ErrorCode, id string) *wsclient.Event {
	t.Helper()
	ev := expect(t, c, "error "+string(code), func(e *wsclient.Event) bool { return e.Event == "error" || e.Event == "ack" })
	if ev.Code != string(code) || string(ev.ID) != id || ev.Message == "" {
		t.Fatalf("got %s, want error %s with id %q and a message", ev.Raw, code, id)
	}
	want := map[string]any{"event": "error", "code": string(code), "message": ev.Message}
	if id != "" {
		want["id"] = fields(t, ev)["id"]
	}
	sameFields(t, ev, want)
	return ev
}

func TestMalformedFrames(t *testing.T) {
	n := startNode(t, nil)
	c := n.dial("alice")
	long := strings.Repeat("r", 129)
	cases := []struct {
		frame string
		code  wire.ErrorCode
		id    string
	}{
		{`{bad`, wire.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"`, wire.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"} {}`, wire.CodeInvalidJSON, ""},
		{``, wire.CodeInvalidJSON, ""},
		// Not an object.
		{`[{"type":"chat","content":"x"}]`, wire.CodeInvalidMessage, ""},
		{`"chat"`, wire.CodeInvalidMessage, ""},
		{`42`, wire.CodeInvalidMessage, ""},
		{`null`, wire.CodeInvalidMessage, ""},
		// Missing or mistyped fields.
		{`{}`, wire.CodeInvalidMessage, ""},
		{`{"content":"no type"}`, wire.CodeInvalidMessage, ""},
		{`{"type":7,"id":"t"}`, wire.CodeInvalidMessage, `"t"`},
		{`{"type":"chat","id":1}`, wire.CodeInvalidMessage, "1"},
		{`{"type":"chat","content":{"text":"x"}}`, wire.CodeInvalidMessage, ""},
		{`{"type":"join_room"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"join_room","room":5}`, wire.CodeInvalidMessage, ""},
		{`{"type":"leave_room","room":null}`, wire.CodeInvalidMessage, ""},
		{`{"type":"room_message","room":"r"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"room_message","content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","content":"x","id":"d"}`, wire.CodeInvalidMessage, `"d"`},
		{`{"type":"direct_message","target_user":"","content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"bob","content":1}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":false}`, wire.CodeInvalidMessage, ""},
		// Unknown types.
		{`{"type":"dance"}`, wire.CodeUnknownType, ""},
		{`{"type":"PING","id":"u"}`, wire.CodeUnknownType, `"u"`},
		// Room names: 1-128 of A-Z a-z 0-9 _ - . : @
		{`{"type":"join_room","room":""}`, wire.CodeInvalidRoom, ""},
		{`{"type":"join_room","room":"` + long + `","id":2}`, wire.CodeInvalidRoom, "2"},
		{`{"type":"join_room","room":"a b"}`, wire.CodeInvalidRoom, ""},
		{`{"type":"leave_room","room":"x/y"}`, wire.CodeInvalidRoom, ""},
		{`{"type":"room_message","room":"caf\u00e9","content":"x"}`, wire.CodeInvalidRoom, ""},
		// Well-formed, refused by state.
		{`{"type":"room_message","room":"r","content":"x","id":3}`, wire.CodeNotMember, "3"},
		{`{"type":"leave_room","room":"r","id":4}`, wire.CodeNotMember, "4"},
		{`{"type":"direct_message","target_user":"nobody","content":"x","id":5}`, wire.CodeUserOffline, "5"},
	}
	for i, tc := range cases {
		if err := c.SendText(tc.frame); err != nil {
			t.Fatal(err)
		}
		expectCode(t, c, tc.code, tc.id)
		stillWorks(t, c, fmt.Sprint("after-", i))
	}
	waitFor(t, "errors counted", 5*time.Second, func() bool { return n.node.Metrics().Errors.Load() == int64(len(cases)) })
	if n.node.Metrics().Sessions.Load() != 1 {
		t.Fatal("an error closed the connection")
	}
}

// forbidden: the token's rooms claim decides which rooms a user may use.
func TestForbiddenRoom(t *testing.T) {
	n := startNode(t, nil, withAuth(t, transport.AuthConfig{Secret: testSecret}))
	tok := hsToken(t, jwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{"lobby", "team:*"}})
	c, ev, err := dialWS(t, n.wsURL("/ws?token="+tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Client != "ann" {
		t.Fatalf("welcome %s: the client id is the token's sub", ev.Raw)
	}
	send(t, c, map[string]any{"type": "join_room", "room": "vip", "id": 1})
	expectCode(t, c, wire.CodeForbidden, "1")
	stillWorks(t, c, "a")
	send(t, c, map[string]any{"type": "room_message", "room": "vip", "content": "x", "id": 2})
	expectCode(t, c, wire.CodeForbidden, "2")
	stillWorks(t, c, "b")
	send(t, c, map[string]any{"type": "join_room", "room": "team:blue", "id": 3})
	expect(t, c, "allowed join", isAck("3"))
	send(t, c, map[string]any{"type": "room_message", "room": "team:blue", "content": "in"})
	expect(t, c, "allowed room message", chatFrom("ann", "in"))
}

// rate_limited: each command spends a token; a refused one is answered with
// its id, and once tokens refill the connection is served again.
func TestRateLimited(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond, c.RateBurst, c.RateStrikes = 10, 3, 1000 }))
	c := n.dial("eager")
	const burst = 12
	for i := range burst {
		send(t, c, map[string]any{"type": "ping", "id": i})
	}
	answered := map[string]string{}
	limited := 0
	for len(answered) < burst {
		ev := expect(t, c, "an answer to every ping", func(e *wsclient.Event) bool { return e.Event == "ack" || e.Event == "error" })
		if _, dup := answered[string(ev.ID)]; dup {
			t.Fatalf("id %s answered twice", ev.ID)
		}
		answered[string(ev.ID)] = ev.Event
		if ev.Event == "error" {
			if ev.Code != "rate_limited" {
				t.Fatalf("got %s", ev.Raw)
			}
			limited++
		}
	}
	if limited == 0 {
		t.Fatalf("%d pings at once past a burst of 3 were all served", burst)
	}
	waitFor(t, "tokens refilled", 5*time.Second, func() bool {
		send(t, c, map[string]any{"type": "ping", "id": "again"})
		ev := expect(t, c, "answer", func(e *wsclient.Event) bool { return e.Event == "ack" || e.Event == "error" })
		return ev.Event == "ack"
	})
	if got := n.node.Metrics().RateLimited.Load(); got < int64(limited) {
		t.Fatalf("rate limited counted %d, sent %d", got, limited)
	}
}

// Repeated abuse: rate_limited errors in a row past RateStrikes close 1008.
func TestRateLimitStrikesClose(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.RatePerSecond, c.RateBurst, c.RateStrikes = 0.5, 1, 3 }))
	c, bystander := n.dial("abuser"), n.dial("bystander")
	for i := range 5 {
		// The fourth ping is the third strike: the node may close before
		// the fifth is written.
		if err := c.SendJSON(map[string]any{"type": "ping", "id": i}); err != nil && i < 4 {
			t.Fatalf("send ping %d: %v", i, err)
		}
	}
	expect(t, c, "first ping served", isAck("0"))
	expectCode(t, c, wire.CodeRateLimited, "1")
	expectCode(t, c, wire.CodeRateLimited, "2")
	if code, err := c.WaitClosed(5 * time.Second); err != nil || code != 1008 {
		t.Fatalf("closed with %d (%v), want 1008", code, err)
	}
	stillWorks(t, bystander, "ok")
}

func TestTooManyRooms(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.MaxRoomsPerSession = 2 }))
	c := n.dial("roomy")
	for i, room := range []string{"a", "b"} {
		send(t, c, map[string]any{"type": "join_room", "room": room, "id": i})
		expect(t, c, "join", isAck(fmt.Sprint(i)))
	}
	send(t, c, map[string]any{"type": "join_room", "room": "c", "id": 2})
	expectCode(t, c, wire.CodeTooManyRooms, "2")
	stillWorks(t, c, "x")
	send(t, c, map[string]any{"type": "leave_room", "room": "a", "id": 3})
	expect(t, c, "leave", isAck("3"))
	send(t, c, map[string]any{"type": "join_room", "room": "c", "id": 4})
	expect(t, c, "join after a leave", isAck("4"))
}

// unavailable: the broker refuses a publish (down, outbox full). Nothing of
// a refused message is delivered, locally either; what needs no broker (a
// direct message to a local user, joins, pings) still works.
func TestUnavailable(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	n := startNode(t, fabric.Broker())
	a, b := n.dial("alice"), n.dial("bob")
	for i, c := range []*wsclient.Client{a, b} {
		send(t, c, map[string]any{"type": "join_room", "room": "r", "id": i})
		expect(t, c, "join", isAck(fmt.Sprint(i)))
	}

	fabric.SetDown(true)
	send(t, a, map[string]any{"type": "chat", "content": "refused", "id": 1})
	expectCode(t, a, wire.CodeUnavailable, "1")
	send(t, a, map[string]any{"type": "room_message", "room": "r", "content": "refused", "id": 2})
	expectCode(t, a, wire.CodeUnavailable, "2")
	send(t, a, map[string]any{"type": "direct_message", "target_user": "nobody", "content": "refused", "id": 3})
	expectCode(t, a, wire.CodeUnavailable, "3")
	send(t, a, map[string]any{"type": "direct_message", "target_user": "bob", "content": "local", "id": 4})
	expect(t, a, "a local direct message needs no broker", isAck("4"))
	expect(t, b, "local direct message", func(e *wsclient.Event) bool { return e.Event == "direct_message" && e.Content == "local" })
	send(t, a, map[string]any{"type": "join_room", "room": "r2", "id": 5})
	expect(t, a, "join while the broker is down", isAck("5"))
	stillWorks(t, a, "down")

	fabric.SetDown(false)
	send(t, a, map[string]any{"type": "room_message", "room": "r", "content": "back", "id": 6})
	expect(t, a, "ack after recovery", isAck("6"))
	for _, e := range collectUntil(t, b, "the first message after recovery", chatFrom("alice", "back")) {
		if e.Content == "refused" {
			t.Fatalf("a refused message was delivered: %s", e.Raw)
		}
	}
	if got := n.node.Metrics().Unavailable.Load(); got < 3 {
		t.Fatalf("unavailable counted %d", got)
	}
}
