package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// collect reads events from c until stop matches one (included) and
// returns those that keep accepts.
func collect(t *testing.T, c *wsclient.Client, keep, stop func(*wsclient.Event) bool) []*wsclient.Event {
	t.Helper()
	var out []*wsclient.Event
	for {
		ev, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("collecting events: %v (after %d)", err, len(out))
		}
		if keep(ev) {
			out = append(out, ev)
		}
		if stop(ev) {
			return out
		}
	}
}

// expectAll reads events from c until each matcher has matched one, in any
// order (they come over different channels).
func expectAll(t *testing.T, c *wsclient.Client, matchers ...func(*wsclient.Event) bool) {
	t.Helper()
	left := slices.Clone(matchers)
	for len(left) > 0 {
		ev, err := c.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("%d expected events missing: %v", len(left), err)
		}
		for i, m := range left {
			if m(ev) {
				left = slices.Delete(left, i, i+1)
				break
			}
		}
	}
}

func chatFrom(user string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == "chat" && e.From == user }
}

func content(c string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Content == c }
}

// contents returns the content of each event.
func contents(evs []*wsclient.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Content
	}
	return out
}

func TestRedisChatAndPresenceAcrossNodes(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")

	alice := n1.dial("alice")
	carol := n1.dial("carol")
	bob := n2.dial("bob")
	expect(t, alice, "bob connected (other node)", isPresence("user_connected", "bob"))
	expect(t, carol, "bob connected (other node)", isPresence("user_connected", "bob"))

	const n = 200
	for i := range n {
		if err := alice.SendJSON(map[string]any{"type": "chat", "content": seq("m", i), "id": seq("c", i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]string, n)
	for i := range want {
		want[i] = seq("m", i)
	}
	for _, rc := range []struct {
		name string
		c    *wsclient.Client
	}{{"bob (other node)", bob}, {"carol (same node)", carol}} {
		got := contents(collect(t, rc.c, chatFrom("alice"), content(seq("m", n-1))))
		if !slices.Equal(got, want) {
			t.Fatalf("%s got %d chats, want %d in order, exactly once: %v", rc.name, len(got), n, got)
		}
	}
	acks := collect(t, alice, isEvent("ack"), isAck(seq("c", n-1)))
	if len(acks) != n {
		t.Fatalf("alice got %d acks, want %d", len(acks), n)
	}

	// Nothing more arrives: a marker sent last is the next chat bob sees.
	_ = alice.SendJSON(map[string]any{"type": "chat", "content": "end"})
	ev := expect(t, bob, "marker", isEvent("chat"))
	if ev.Content != "end" {
		t.Fatalf("bob got an extra chat %+v", ev)
	}
	for _, e := range alice.Pending() {
		if e.Event == "chat" {
			t.Fatalf("alice received her own chat: %+v", e)
		}
	}

	bob.Abort()
	expect(t, alice, "bob disconnected (other node)", isPresence("user_disconnected", "bob"))
	expect(t, carol, "bob disconnected (other node)", isPresence("user_disconnected", "bob"))
}

func TestRedisRoomsAcrossNodesAndUnsubscribe(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	c := n1.dial("carol")
	b := n2.dial("bob")

	join(t, a, "r1")
	rs.WaitNumSub(roomChannel("r1"), 1, 5*time.Second)
	join(t, b, "r1")
	expect(t, a, "bob joined (other node)", func(e *wsclient.Event) bool {
		return e.Event == "user_joined" && e.UserID == "bob" && e.Room == "r1"
	})
	rs.WaitNumSub(roomChannel("r1"), 2, 5*time.Second)
	join(t, c, "r2")

	// Both members send, interleaved; each receives every message of both,
	// each sender's in order, exactly once.
	const n = 100
	for i := range n {
		_ = a.SendJSON(map[string]any{"type": "room_message", "room": "r1", "content": seq("a", i)})
		_ = b.SendJSON(map[string]any{"type": "room_message", "room": "r1", "content": seq("b", i)})
	}
	_ = a.SendJSON(map[string]any{"type": "room_message", "room": "r1", "content": "a-end"})
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "r1", "content": "b-end"})
	for _, m := range []struct {
		name string
		c    *wsclient.Client
	}{{"alice", a}, {"bob", b}} {
		var fromA, fromB []string
		ends := 0
		for ends < 2 {
			ev, err := m.c.Next(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v (got %d + %d)", m.name, err, len(fromA), len(fromB))
			}
			if ev.Event != "chat" || ev.Room != "r1" {
				continue
			}
			switch ev.Content {
			case "a-end", "b-end":
				ends++
				continue
			}
			if ev.From == "alice" {
				fromA = append(fromA, ev.Content)
			} else {
				fromB = append(fromB, ev.Content)
			}
		}
		for i := range n {
			if len(fromA) != n || len(fromB) != n || fromA[i] != seq("a", i) || fromB[i] != seq("b", i) {
				t.Fatalf("%s: messages missing, duplicated or out of order:\n%v\n%v", m.name, fromA, fromB)
			}
		}
	}
	for _, e := range c.Pending() {
		if e.Room == "r1" {
			t.Fatalf("carol (not a member) got %+v", e)
		}
	}

	// The last member of a node leaving unsubscribes that node.
	_ = b.SendJSON(map[string]any{"type": "leave_room", "room": "r1"})
	expect(t, a, "bob left (other node)", func(e *wsclient.Event) bool { return e.Event == "user_left" && e.UserID == "bob" })
	rs.WaitNumSub(roomChannel("r1"), 1, 5*time.Second)
	_ = a.SendJSON(map[string]any{"type": "leave_room", "room": "r1"})
	_ = c.SendJSON(map[string]any{"type": "leave_room", "room": "r2"})
	waitFor(t, "no room channel left", 5*time.Second, func() bool { return len(rs.Channels("websocket:room:*")) == 0 })
	if got := n1.broker.Stats().Subscriptions + n2.broker.Stats().Subscriptions; got != 4 {
		t.Fatalf("subscriptions = %d, want 4 (broadcast and node channel on each node)", got)
	}
}

func TestRedisDirectMessagesFollowPresence(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	n3 := startNode(t, rs.URL(), "n3")

	// Watch every node channel, as an operator would with redis-cli.
	watch := rs.Client().PSubscribe(context.Background(), "websocket:node:*")
	defer watch.Close()
	if _, err := watch.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := n1.dial("alice")
	b2 := n2.dial("bob")
	b3 := n3.dial("bob")
	d := n3.dial("dave")
	expect(t, a, "dave connected", isPresence("user_connected", "dave"))

	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "hi bob", "id": "dm1"})
	expect(t, a, "ack", isAck("dm1"))
	for _, c := range []*wsclient.Client{b2, b3} {
		ev := expect(t, c, "direct message", isEvent("direct_message"))
		if ev.From != "alice" || ev.Content != "hi bob" {
			t.Fatalf("got %+v", ev)
		}
	}
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "dave", "content": "hi dave", "id": "dm2"})
	expect(t, a, "ack", isAck("dm2"))
	expect(t, d, "direct message", isEvent("direct_message"))
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "nobody", "content": "?", "id": "dm3"})
	ev := expect(t, a, "error", isEvent("error"))
	if ev.Code != "user_offline" || string(ev.ID) != `"dm3"` {
		t.Fatalf("got %+v", ev)
	}

	// Only the nodes holding the user got the payload: bob's message went to
	// n2 and n3, dave's to n3 alone, nothing to n1.
	var got []string
	for len(got) < 3 {
		m, err := watch.ReceiveTimeout(context.Background(), 5*time.Second)
		if err != nil {
			t.Fatalf("watching node channels: %v (got %v)", err, got)
		}
		if msg, ok := m.(*goredis.Message); ok {
			got = append(got, msg.Channel)
		}
	}
	slices.Sort(got)
	want := []string{"websocket:node:n2", "websocket:node:n3", "websocket:node:n3"}
	if !slices.Equal(got, want) {
		t.Fatalf("direct messages published on %v, want %v", got, want)
	}
	if m, err := watch.ReceiveTimeout(context.Background(), 200*time.Millisecond); err == nil {
		t.Fatalf("unexpected publish %v", m)
	}
	if got := n1.broker.Stats().Directs; got != 3 {
		t.Fatalf("n1 directs = %d, want 3", got)
	}
	if n := b3.Pending(); len(n) != 0 {
		for _, e := range n {
			if e.Event == "direct_message" {
				t.Fatalf("bob on n3 got a second copy: %+v", e)
			}
		}
	}
}

// TestRedisTutorialWireCompatibility plays the FastAPI tutorial's side: its
// envelopes, published on the shared channels with a plain PUBLISH, reach
// Switchboard users; Switchboard's envelopes are what a tutorial node reads.
func TestRedisTutorialWireCompatibility(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "lobby")
	join(t, b, "lobby")
	rs.WaitNumSub(roomChannel("lobby"), 2, 5*time.Second)

	// A tutorial node listens on the broadcast and room channels.
	tut := rs.Client().Subscribe(context.Background(), "websocket:broadcast", roomChannel("lobby"))
	defer tut.Close()
	for range 2 {
		if _, err := tut.Receive(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	// Backend / tutorial -> Switchboard users.
	rs.Publish("websocket:broadcast", `{"type":"broadcast","sender_id":"backend","payload":{"event":"chat","from":"backend","content":"to all"}}`)
	rs.Publish(roomChannel("lobby"), `{"type":"room_message","room":"lobby","payload":{"event":"chat","from":"tut","room":"lobby","content":"to lobby"}}`)
	rs.Publish("websocket:broadcast", `{"type":"direct_message","target":"bob","payload":{"event":"direct_message","from":"tut","content":"to bob"}}`)
	rs.Publish("websocket:broadcast", `not json`)
	rs.Publish(roomChannel("lobby"), `{"type":"room_message","room":"lobby","payload":[1]}`)
	toAll := func(e *wsclient.Event) bool { return e.From == "backend" && e.Content == "to all" }
	toLobby := func(e *wsclient.Event) bool { return e.From == "tut" && e.Room == "lobby" }
	toBob := func(e *wsclient.Event) bool {
		return e.Event == "direct_message" && e.From == "tut" && e.Content == "to bob"
	}
	expectAll(t, a, toAll, toLobby)
	expectAll(t, b, toAll, toLobby, toBob)
	waitFor(t, "invalid envelopes counted", 5*time.Second, func() bool {
		return n1.broker.Stats().Invalid == 2 && n2.broker.Stats().Invalid == 2
	})

	// Switchboard -> tutorial node.
	_ = a.SendJSON(map[string]any{"type": "chat", "content": "hello tutorial"})
	_ = a.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": "lobby hello"})
	type env struct {
		Type     string          `json:"type"`
		SenderID string          `json:"sender_id"`
		Room     string          `json:"room"`
		Payload  json.RawMessage `json:"payload"`
	}
	seen := map[string]env{}
	for len(seen) < 2 {
		m, err := tut.ReceiveTimeout(context.Background(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		msg, ok := m.(*goredis.Message)
		if !ok {
			continue
		}
		var e env
		if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
			continue // the garbage published above
		}
		if e.Type == wire.EnvBroadcast && e.SenderID == "alice" {
			seen["chat"] = e
		}
		if e.Type == wire.EnvRoom && e.Room == "lobby" && json.Valid(e.Payload) && string(e.Payload) != "" {
			var p struct{ From, Content string }
			_ = json.Unmarshal(e.Payload, &p)
			if p.From == "alice" && p.Content == "lobby hello" {
				seen["room"] = e
			}
		}
	}
	if got := string(seen["chat"].Payload); got != `{"event":"chat","from":"alice","content":"hello tutorial"}` {
		t.Fatalf("chat payload %s", got)
	}
}

func TestRedisConfigErrors(t *testing.T) {
	for _, url := range []string{"", "http://x", "redis://[::1"} {
		if _, err := redis.New(redis.Config{URL: url}); err == nil {
			t.Fatalf("url %q accepted", url)
		}
	}
}

// TestRedisRestrictedACLUser runs two nodes as a Redis user limited to what
// docs/operations.md lists.
func TestRedisRestrictedACLUser(t *testing.T) {
	rs := startRedis(t)
	rule := []any{"ACL", "SETUSER", "sb", "on", ">pw", "resetchannels", "&websocket:*", "resetkeys", "~websocket:presence:*",
		"~websocket:stream:*", "~websocket:stream-meta:*", "~websocket:rp:*",
		"-@all", "+@connection", "+subscribe", "+unsubscribe", "+publish", "+pubsub|numsub", "+evalsha", "+script|load",
		"+multi", "+exec", "+sadd", "+srem", "+smembers", "+del", "+set", "+pexpire", "+exists",
		"+hget", "+hset", "+hincrby", "+xadd", "+xrange", "+xrevrange", "+hdel", "+hgetall", "+info"}
	if err := rs.Client().Do(context.Background(), rule...).Err(); err != nil {
		t.Fatal(err)
	}
	url := "redis://sb:pw@" + rs.Addr() + "/0"
	n1 := startNode(t, url, "n1")
	n2 := startNode(t, url, "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	expect(t, a, "bob connected", isPresence("user_connected", "bob"))
	join(t, a, "acl")
	join(t, b, "acl")
	rs.WaitNumSub(roomChannel("acl"), 2, 5*time.Second)
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "acl", "content": "in room"})
	expect(t, a, "room message", func(e *wsclient.Event) bool { return e.Content == "in room" })
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "direct", "id": "dm"})
	expect(t, a, "ack", isAck("dm"))
	expect(t, b, "direct message", isEvent("direct_message"))
	denied, err := rs.Client().Do(context.Background(), "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	if len(denied) != 0 {
		t.Fatalf("commands denied by the ACL: %v", denied)
	}
}

// TestRedisJoinAckMeansSubscribed: a join is acknowledged only once Redis
// carries the room's channel to the joiner's node, so that what another
// node publishes right after the ack arrives. No test-side wait for the
// subscription here: each round uses a fresh room, whose first join on each
// node starts a new SUBSCRIBE.
func TestRedisJoinAckMeansSubscribed(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	const rounds = 30
	for i := range rounds {
		room := fmt.Sprint("fresh-", i)
		join(t, a, room)
		join(t, b, room)
		expect(t, a, "bob's user_joined from the other node, "+room, func(e *wsclient.Event) bool {
			return e.Event == "user_joined" && e.UserID == "bob" && e.Room == room
		})
		if err := b.SendJSON(map[string]any{"type": "room_message", "room": room, "content": room}); err != nil {
			t.Fatal(err)
		}
		expect(t, a, "bob's message, "+room, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == room })
		if err := a.SendJSON(map[string]any{"type": "room_message", "room": room, "content": "re " + room}); err != nil {
			t.Fatal(err)
		}
		expect(t, b, "alice's reply, "+room, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == "re "+room })
	}
	for _, n := range []*testNode{n1, n2} {
		if got := n.node.Metrics().SubscribeTimeouts.Load(); got != 0 {
			t.Errorf("%s: %d rooms let joins in without Redis's confirmation", n.id, got)
		}
	}
}
