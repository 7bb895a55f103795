package transport_test

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

func TestSmokeRoomChat(t *testing.T) {
	n := startNode(t, nil)
	a := n.dial("alice")
	b := n.dial("bob")
	expect(t, a, "bob connected", func(e *wsclient.Event) bool { return e.Event == "user_connected" && e.UserID == "bob" })
	_ = a.SendJSON(map[string]any{"type": "join_room", "room": "r1", "id": 1})
	expect(t, a, "ack", isEvent("ack"))
	_ = b.SendJSON(map[string]any{"type": "join_room", "room": "r1"})
	expect(t, a, "bob joined", func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == "bob" })
	_ = a.SendJSON(map[string]any{"type": "room_message", "room": "r1", "content": "hi"})
	ev := expect(t, b, "chat", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Room == "r1" })
	if ev.Content != "hi" || ev.From != "alice" {
		t.Fatalf("got %+v", ev)
	}
	_ = b.SendText("{bad")
	ev = expect(t, b, "error", isEvent("error"))
	if ev.Code != "invalid_json" {
		t.Fatalf("got %+v", ev)
	}
	b.Abort()
	expect(t, a, "bob left", func(e *wsclient.Event) bool { return e.Event == "user_left" && e.UserID == "bob" })
	waitFor(t, "one session", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 1 })
}
