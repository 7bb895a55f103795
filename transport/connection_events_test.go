package transport_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// dialQuiet connects id with ?connection_events=off and consumes its welcome.
func dialQuiet(t *testing.T, n *testNode, id string) *wsclient.Client {
	t.Helper()
	c, err := wsclient.Dial(n.wsURL("/ws?connection_events=off&client_id="+id), wsclient.Options{})
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if ev, err := c.Next(5 * time.Second); err != nil || ev.Event != "welcome" {
		t.Fatalf("welcome for %s: %v %+v", id, err, ev)
	}
	return c
}

// A client that opts out (?connection_events=off) gets no user_connected
// or user_disconnected, from this node or another, and everything else as
// before (docs/protocol.md, section 8).
func TestClientOptsOutOfConnectionEvents(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	a, b := startNode(t, fabric.Broker()), startNode(t, fabric.Broker())
	quiet, loud := dialQuiet(t, a, "quiet"), a.dial("loud")
	for _, n := range []*testNode{a, b} {
		c := n.dial("visitor-" + n.node.ID())
		expect(t, loud, "the visitor's user_connected", func(e *wsclient.Event) bool { return e.Event == "user_connected" && e.UserID == "visitor-"+n.node.ID() })
		_ = c.Close()
		expect(t, loud, "the visitor's user_disconnected", func(e *wsclient.Event) bool {
			return e.Event == "user_disconnected" && e.UserID == "visitor-"+n.node.ID()
		})
	}
	// Everything else still reaches the quiet client: a global chat and a
	// room's events, and the marker sent after the connection events.
	carol := b.dial("carol")
	_ = carol.SendJSON(map[string]any{"type": "chat", "content": "hello all"})
	for _, e := range collectUntil(t, quiet, "carol's chat", chatFrom("carol", "hello all")) {
		if e.Event == "user_connected" || e.Event == "user_disconnected" {
			t.Fatalf("a client that opted out got %s", e.Raw)
		}
	}
	_, _ = joinAt(t, quiet, "r", nil)
	_, _ = joinAt(t, carol, "r", nil)
	expect(t, quiet, "carol joined the room", func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == "carol" })

	// Any other value is refused before the upgrade.
	resp, err := http.Get(a.url + "/ws?connection_events=some")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("connection_events=some: %d, want 400", resp.StatusCode)
	}
}

// A node with connection events off gives its clients none, so that a
// connect costs O(1) frames however many connections it holds; it still
// announces its own users to the nodes that want them.
func TestNodeWithConnectionEventsOff(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	off := startNode(t, fabric.Broker(), withActors(func(c *actors.Config) { c.NoConnectionEvents = true }))
	on := startNode(t, fabric.Broker())
	watcher := on.dial("watcher")
	var clients []*wsclient.Client
	for i := range 50 {
		clients = append(clients, off.dial("u"+string(rune('A'+i%26))+string(rune('a'+i/26))))
	}
	// Every connect on the node that is off was announced to the other node.
	waitFor(t, "50 user_connected at the watcher", 5*time.Second, func() bool {
		n := 0
		for _, e := range watcher.Pending() {
			if e.Event == "user_connected" {
				n++
			}
		}
		return n == 50
	})
	// On the node that is off, 50 connects cost 50 frames: the welcomes.
	if got := off.node.Metrics().MessagesOut.Load(); got != 50 {
		t.Fatalf("50 connects queued %d frames on a node with connection events off, want 50 (the welcomes)", got)
	}
	x := on.dial("visitor")
	_ = x.Close()
	stillWorks(t, clients[0], "after")
	for _, c := range clients {
		for _, e := range c.Drain() {
			if e.Event == "user_connected" || e.Event == "user_disconnected" {
				t.Fatalf("a client of a node with connection events off got %s", e.Raw)
			}
		}
	}
}
