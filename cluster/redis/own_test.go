package redis_test

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestRedisOwnEnvelopesInAnyLayout: a node skips, before decoding, every
// envelope whose "node" is its own, wherever the member is and whoever
// wrote it, and delivers the others: a tutorial node's (no "node"), another
// node's, one that names the node only inside its payload.
func TestRedisOwnEnvelopesInAnyLayout(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	a := n1.dial("alice")
	join(t, a, "lobby")
	ch := roomChannel("lobby")
	rs.WaitNumSub(ch, 1, 5*time.Second)
	chat := func(content string) string {
		return `{"event":"chat","from":"x","room":"lobby","content":"` + content + `"}`
	}
	// alice's user_connected and user_joined come back to n1 too (its own,
	// skipped): wait for both, so that they are not counted below.
	deadline := time.Now().Add(5 * time.Second)
	for n1.broker.Stats().OwnSkipped < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("n1 skipped %d of its own presence envelopes, want 2", n1.broker.Stats().OwnSkipped)
		}
		time.Sleep(time.Millisecond)
	}
	before := n1.broker.Stats().OwnSkipped
	for _, data := range []string{
		// n1's own, in layouts n1 does not write itself.
		`{"type":"room_message","room":"lobby","payload":` + chat("own, node last") + `,"node":"n1"}`,
		`{"msg_id":"n1~zz:1","payload":` + chat("own, with msg_id") + `,"room":"lobby","node":"n1","type":"room_message"}`,
		`{"type":"room_message","room":"lobby","no\u0064e":"n\u0031","payload":` + chat("own, escaped") + `}`,
		// Not n1's.
		`{"type":"room_message","room":"lobby","payload":` + chat("tutorial") + `}`,
		`{"type":"room_message","room":"lobby","payload":{"event":"chat","node":"n1","content":"node in the payload"}}`,
		`{"node":"n10","type":"room_message","room":"lobby","payload":` + chat("another node") + `,"msg_id":"n10~a:1"}`,
		`{"type":"room_message","room":"lobby","payload":` + chat("end") + `}`,
	} {
		rs.Publish(ch, data)
	}
	got := contents(collect(t, a, isEvent("chat"), func(e *wsclient.Event) bool { return e.Content == "end" }))
	want := []string{"tutorial", "node in the payload", "another node", "end"}
	if len(got) != len(want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %q, want %q", got, want)
		}
	}
	if skipped := n1.broker.Stats().OwnSkipped - before; skipped != 3 {
		t.Fatalf("%d own envelopes skipped before decoding, want 3", skipped)
	}
}
