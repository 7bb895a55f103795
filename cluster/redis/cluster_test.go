package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// startCluster starts a Redis Cluster (3 primaries, 3 replicas) and
// registers the goroutine check first, as startRedis does.
func startCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	checkGoroutines(t)
	return redistest.StartCluster(t, redistest.ClusterOptions{})
}

// withCluster points a node at cl, with partitions partitions (0: the
// default).
func withCluster(cl *redistest.Cluster, partitions int) nodeOpt {
	return withBroker(func(c *redis.Config) {
		c.URL, c.ClusterAddrs, c.Partitions = "", cl.Addrs(), partitions
	})
}

// presenceCount asks c for room's presence: "users N connections M".
func presenceCount(t *testing.T, c *wsclient.Client, room string) string {
	t.Helper()
	id := fmt.Sprint("p", time.Now().UnixNano())
	_ = c.SendJSON(map[string]any{"type": "presence", "room": room, "id": id})
	ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return string(e.ID) == `"`+id+`"` })
	if err != nil {
		t.Fatalf("presence: %v", err)
	}
	var p struct{ Users, Connections int }
	_ = json.Unmarshal(ev.Raw, &p)
	return fmt.Sprintf("users %d connections %d", p.Users, p.Connections)
}

// TestRedisClusterAcrossNodes runs two nodes on a Redis Cluster of three
// shards (and their replicas): chat and presence events, rooms spread over
// every shard with their history and presence, and direct messages reach
// the other node's clients exactly once, in order.
func TestRedisClusterAcrossNodes(t *testing.T) {
	cl := startCluster(t)
	n1 := startNode(t, "", "n1", withCluster(cl, 0))
	n2 := startNode(t, "", "n2", withCluster(cl, 0))

	alice := n1.dial("alice")
	carol := n1.dial("carol")
	bob := n2.dial("bob")
	expect(t, alice, "bob connected (other node)", isPresence("user_connected", "bob"))

	// Chat: the broadcast channel, sharded on the hub's slot.
	const chats = 50
	for i := range chats {
		_ = alice.SendJSON(map[string]any{"type": "chat", "content": seq("m", i), "id": seq("c", i)})
	}
	want := make([]string, chats)
	for i := range want {
		want[i] = seq("m", i)
	}
	for name, c := range map[string]*wsclient.Client{"bob": bob, "carol": carol} {
		if got := contents(collect(t, c, chatFrom("alice"), content(seq("m", chats-1)))); !slices.Equal(got, want) {
			t.Fatalf("%s got chats %v, want %v", name, got, want)
		}
	}

	// Rooms: spread over the partitions, and so over the shards.
	const rooms = 24
	for i := range rooms {
		room := fmt.Sprintf("room-%d", i)
		join(t, alice, room)
		join(t, bob, room)
	}
	for i := range rooms {
		for j := range 3 {
			_ = alice.SendJSON(map[string]any{"type": "room_message", "room": fmt.Sprintf("room-%d", i), "content": fmt.Sprintf("r%d-%d", i, j)})
		}
	}
	got := map[string][]string{}
	offsets := map[string][]uint64{}
	epochs := map[string]string{}
	for n := 0; n < rooms*3; {
		ev, err := bob.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("bob's room messages: %v (after %d)", err, n)
		}
		if ev.Event == "chat" && ev.Room != "" {
			got[ev.Room] = append(got[ev.Room], ev.Content)
			offsets[ev.Room] = append(offsets[ev.Room], ev.Offset)
			epochs[ev.Room] = ev.Epoch
			n++
		}
	}
	for i := range rooms {
		room := fmt.Sprintf("room-%d", i)
		if w := []string{fmt.Sprintf("r%d-0", i), fmt.Sprintf("r%d-1", i), fmt.Sprintf("r%d-2", i)}; !slices.Equal(got[room], w) {
			t.Fatalf("%s: bob got %v, want %v", room, got[room], w)
		}
		if !slices.Equal(offsets[room], []uint64{1, 2, 3}) {
			t.Fatalf("%s: offsets %v, want 1 2 3", room, offsets[room])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, p := range cl.Primaries() {
		if n, err := p.Client().DBSize(ctx).Result(); err != nil || n == 0 {
			t.Fatalf("shard %d holds %d keys (%v): the rooms are not spread over every shard", i, n, err)
		}
	}

	// History: bob leaves a room, misses two publications, and recovers
	// them when he joins again with his position.
	_ = bob.SendJSON(map[string]any{"type": "leave_room", "room": "room-5", "id": "leave"})
	expect(t, bob, "leave ack", isAck("leave"))
	for j := 3; j < 5; j++ {
		_ = alice.SendJSON(map[string]any{"type": "room_message", "room": "room-5", "content": fmt.Sprintf("r5-%d", j), "id": fmt.Sprint("late", j)})
		expect(t, alice, "ack", isAck(fmt.Sprint("late", j)))
	}
	_ = bob.SendJSON(map[string]any{"type": "join_room", "room": "room-5", "id": "rejoin",
		"since": map[string]any{"offset": 3, "epoch": epochs["room-5"]}})
	var recovered []string
	var ack *wsclient.Event
	for !slices.Contains(recovered, "r5-4") || ack == nil {
		ev, err := bob.Next(5 * time.Second)
		if err != nil {
			t.Fatalf("bob's recovery: %v (got %v, ack %v)", err, recovered, ack)
		}
		switch {
		case ev.Event == "chat" && ev.Room == "room-5":
			recovered = append(recovered, ev.Content)
		case isAck("rejoin")(ev):
			ack = ev
		}
	}
	if !slices.Equal(recovered, []string{"r5-3", "r5-4"}) || ack.Recovered == nil || !*ack.Recovered {
		t.Fatalf("bob recovered %v, ack %s: want r5-3 r5-4 once each, recovered", recovered, ack.Raw)
	}

	// Presence: the room's members on both nodes.
	join(t, carol, "room-7")
	if p := presenceCount(t, bob, "room-7"); p != "users 3 connections 3" {
		t.Fatalf("room-7 presence from n2: %s", p)
	}

	// Direct messages: the directory and the node channels share the hub's
	// slot.
	_ = alice.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "hi bob", "id": "dm1"})
	expect(t, alice, "direct ack", isAck("dm1"))
	if ev := expect(t, bob, "direct message", isEvent("direct_message")); ev.From != "alice" || ev.Content != "hi bob" {
		t.Fatalf("bob got %+v", ev)
	}
	_ = bob.SendJSON(map[string]any{"type": "direct_message", "target_user": "nobody", "content": "?", "id": "dm2"})
	if ev := expect(t, bob, "error", isEvent("error")); ev.Code != "user_offline" {
		t.Fatalf("direct to nobody: %+v", ev)
	}

	bob.Abort()
	expect(t, alice, "bob disconnected (other node)", isPresence("user_disconnected", "bob"))

	// A node with another partition count would not hear the others: it
	// says why and stays out of readiness; the others are unaffected.
	odd := startNodeNoWait(t, "", "n3", withCluster(cl, 16))
	waitFor(t, "the node with 16 partitions refused", 10*time.Second, func() bool {
		st := odd.broker.State()
		return !st.Connected && strings.Contains(st.Detail, "--redis-partitions 16 differs from the cluster's 128")
	})
	if st := n1.broker.State(); !st.Connected {
		t.Fatalf("n1 after n3 came: %+v", st)
	}
}

// TestRedisClusterRestrictedACLUser runs two nodes as the restricted user
// of docs/operations.md's cluster rule (on every primary and replica):
// chat, a room and a direct message pass, and no node logged a denial.
func TestRedisClusterRestrictedACLUser(t *testing.T) {
	cl := startCluster(t)
	cl.ACLSetUser("sb", "on", ">pw", "resetchannels", "&websocket:*", "&{websocket}:*", "resetkeys",
		"~websocket:stream:*", "~websocket:stream-meta:*", "~websocket:rp:*", "~{websocket}:presence:*", "~{websocket}:layout",
		"-@all", "+@connection", "+ssubscribe", "+sunsubscribe", "+spublish", "+pubsub|shardnumsub", "+cluster|slots",
		"+evalsha", "+script|load", "+multi", "+exec", "+sadd", "+srem", "+smembers", "+del", "+set", "+pexpire", "+exists",
		"+hget", "+hset", "+hincrby", "+xadd", "+xrange", "+xrevrange", "+hdel", "+hgetall", "+info", "+get")
	acl := withBroker(func(c *redis.Config) { c.URL = "redis://sb:pw@127.0.0.1/0" })
	n1 := startNode(t, "", "n1", withCluster(cl, 8), acl)
	n2 := startNode(t, "", "n2", withCluster(cl, 8), acl)
	a := n1.dial("alice")
	b := n2.dial("bob")
	expect(t, a, "bob connected", isPresence("user_connected", "bob"))
	join(t, a, "acl")
	join(t, b, "acl")
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "acl", "content": "in room"})
	expect(t, a, "room message", func(e *wsclient.Event) bool { return e.Content == "in room" })
	if p := presenceCount(t, a, "acl"); p != "users 2 connections 2" {
		t.Fatalf("presence: %s", p)
	}
	_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": "direct", "id": "dm"})
	expect(t, a, "ack", isAck("dm"))
	expect(t, b, "direct message", isEvent("direct_message"))
	for _, s := range cl.Nodes() {
		denied, err := s.Client().Do(context.Background(), "ACL", "LOG").Slice()
		if err != nil || len(denied) != 0 {
			t.Fatalf("%s: commands denied by the ACL: %v %v", s.Addr(), denied, err)
		}
	}
}

// TestRedisClusterJoinAckMeansSubscribed: on a cluster a join is
// acknowledged only once the room's partition channel is subscribed on the
// joiner's node, whether the partition was live already (another room of
// it has members), or is subscribed for this room, or was unsubscribed a
// moment ago when its last room emptied. Four partitions: rooms share them.
// History is off: room messages are plain publishes (in routed frames).
func TestRedisClusterJoinAckMeansSubscribed(t *testing.T) {
	cl := startCluster(t)
	noHistory := func(_ *redis.Config, c *actors.Config) { c.HistorySize = actors.NoHistory }
	n1 := startNode(t, "", "n1", withCluster(cl, 4), noHistory)
	n2 := startNode(t, "", "n2", withCluster(cl, 4), noHistory)
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "anchor") // keeps one partition live on n1 only
	const rounds = 30
	for i := range rounds {
		room := fmt.Sprint("fresh-", i)
		join(t, a, room)
		join(t, b, room)
		expect(t, a, "bob's user_joined from the other node, "+room, func(e *wsclient.Event) bool {
			return e.Event == "user_joined" && e.UserID == "bob" && e.Room == room
		})
		_ = b.SendJSON(map[string]any{"type": "room_message", "room": room, "content": room})
		expect(t, a, "bob's message, "+room, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == room })
		_ = a.SendJSON(map[string]any{"type": "room_message", "room": room, "content": "re " + room})
		expect(t, b, "alice's reply, "+room, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == "re "+room })
		if i%2 == 0 { // every other room is left: its partition may go unsubscribed
			for _, c := range []*wsclient.Client{a, b} {
				_ = c.SendJSON(map[string]any{"type": "leave_room", "room": room, "id": "leave-" + room})
				expect(t, c, "leave ack", isAck("leave-"+room))
			}
		}
	}
	for _, n := range []*testNode{n1, n2} {
		if got := n.node.Metrics().SubscribeTimeouts.Load(); got != 0 {
			t.Errorf("%s: %d rooms let joins in without Redis's confirmation", n.id, got)
		}
	}
}
