package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestRedisJoinRefusedWithoutConfirmation: Redis holds every command
// (CLIENT PAUSE) while a client joins a room new to its node. The room
// cannot get its channel confirmed within its wait, so the join is refused
// with unavailable, not acknowledged deaf, and the command sent behind it
// sees no membership. Once Redis answers again, the same join is
// acknowledged and hears the other node.
func TestRedisJoinRefusedWithoutConfirmation(t *testing.T) {
	rs := startRedis(t)
	// Production probe settings: the pause must outlast the room's wait
	// (1 s) without the connections being declared dead first.
	defaults := withBroker(func(c *redis.Config) { c.ProbeIdle, c.ProbeTimeout = 0, 0 })
	n1 := startNode(t, rs.URL(), "n1", defaults)
	n2 := startNode(t, rs.URL(), "n2", defaults)
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, b, "late")

	rs.Pause(3 * time.Second)
	if err := a.SendJSON(map[string]any{"type": "join_room", "room": "late", "id": "j1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendJSON(map[string]any{"type": "room_message", "room": "late", "content": "too soon", "id": "m1"}); err != nil {
		t.Fatal(err)
	}
	ev := expect(t, a, "the join's answer", func(e *wsclient.Event) bool { return string(e.ID) == `"j1"` })
	if ev.Event != "error" || ev.Code != "unavailable" {
		t.Fatalf("join while Redis could not confirm the room: %s, want error unavailable", ev.Raw)
	}
	ev = expect(t, a, "the answer to the message sent behind the join", func(e *wsclient.Event) bool { return string(e.ID) == `"m1"` })
	if ev.Event != "error" || ev.Code != "not_member" {
		t.Fatalf("room message behind a refused join: %s, want error not_member", ev.Raw)
	}
	if got := n1.node.Metrics().SubscribeTimeouts.Load(); got != 1 {
		t.Errorf("%d rooms refused joins, want 1", got)
	}

	// A command answered means the pause is over.
	if err := rs.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	n1.waitConnected(10 * time.Second)
	join(t, a, "late")
	if err := b.SendJSON(map[string]any{"type": "room_message", "room": "late", "content": "now"}); err != nil {
		t.Fatal(err)
	}
	expect(t, a, "bob's message after the join", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == "now" })
}
