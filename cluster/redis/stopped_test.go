package redis_test

import (
	"context"
	"testing"
	"time"
)

// TestRedisBusRecreatesStoppedActors stops (rather than crashes) a
// channel's subscription actor and a pub/sub connection actor from outside,
// as an operator's kill switch or a chaos test does: the bus spawns each
// again from its registry, the node is ready again, and the room keeps
// working across nodes.
func TestRedisBusRecreatesStoppedActors(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "steady")
	join(t, b, "steady")
	rs.WaitNumSub(roomChannel("steady"), 2, 5*time.Second)

	subs, err := n1.broker.Subscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	old := subs[roomChannel("steady")]
	if !n1.node.Kill(old, false) {
		t.Fatalf("no actor %s", old)
	}
	waitFor(t, "a new subscription actor for the room", 5*time.Second, func() bool {
		subs, err := n1.broker.Subscriptions(context.Background())
		return err == nil && subs[roomChannel("steady")] != "" && subs[roomChannel("steady")] != old
	})
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "steady", "content": "after-sub-stop"})
	expect(t, a, "message after a subscription stop", roomChat("bob", "steady", "after-sub-stop"))

	for _, conn := range []string{"redis-n1/conn-0", "redis-n1/conn-1"} {
		before := n1.broker.Stats().Reconnects
		if !n1.node.Kill(conn, false) {
			t.Fatalf("no actor %s", conn)
		}
		// The stop is asynchronous: wait for the new incarnation, then for
		// its subscriptions.
		waitFor(t, conn+" back and n1 connected", 5*time.Second, func() bool {
			return n1.broker.Stats().Reconnects == before+1 && n1.node.BrokerState().Connected
		})
		content := "after-stop-" + conn
		_ = b.SendJSON(map[string]any{"type": "room_message", "room": "steady", "content": content})
		expect(t, a, "room message after "+conn+" stopped", roomChat("bob", "steady", content))
		_ = b.SendJSON(map[string]any{"type": "direct_message", "target_user": "alice", "content": content})
		expect(t, a, "direct message after "+conn+" stopped", isEvent("direct_message"))
	}
	rs.WaitNumSub(roomChannel("steady"), 2, 5*time.Second)
}
