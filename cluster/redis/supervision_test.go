package redis_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

func roomChat(from, room, content string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool {
		return e.Event == "chat" && e.From == from && e.Room == room && e.Content == content
	}
}

// TestRedisSilentSubscriptionIsProbed makes a node's pub/sub connections go
// silent behind a proxy: Redis still counts them as subscribed, publishes
// succeed, nothing arrives. The node's probe notices, it restarts the
// connections and traffic flows again without any client doing anything.
func TestRedisSilentSubscriptionIsProbed(t *testing.T) {
	rs := startRedis(t)
	px := redistest.NewProxy(t, rs.Addr())
	n1 := startNode(t, px.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "quiet")
	join(t, b, "quiet")
	rs.WaitNumSub(roomChannel("quiet"), 2, 5*time.Second)
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "quiet", "content": "before"})
	expect(t, a, "message before", roomChat("bob", "quiet", "before"))

	if n := px.SilenceSubscribers(); n != 2 {
		t.Fatalf("silenced %d connections, want n1's 2", n)
	}
	silenced := time.Now()
	before := n1.broker.Stats()
	if got := rs.NumSub(roomChannel("quiet"))[roomChannel("quiet")]; got != 2 {
		t.Fatalf("redis counts %d subscribers, want 2 (the silent one included)", got)
	}
	waitFor(t, "n1's probe to fail", 5*time.Second, func() bool { return n1.broker.Stats().ProbeFailures > before.ProbeFailures })
	detected := time.Since(silenced)
	waitFor(t, "n1 reconnected", 5*time.Second, func() bool {
		return n1.broker.Stats().Reconnects >= before.Reconnects+2 && n1.node.BrokerState().Connected
	})
	recovered := time.Since(silenced)
	rs.WaitNumSub(roomChannel("quiet"), 2, 5*time.Second) // the silent connection was closed, through the proxy
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "quiet", "content": "after"})
	expect(t, a, "message after recovery", roomChat("bob", "quiet", "after"))

	body := get(t, n1.url+"/metrics")
	for _, want := range []string{"switchboard_redis_probe_failures_total 2", "switchboard_redis_pubsub_connections_up 2", "switchboard_redis_reconnects_total 2"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	t.Logf("silent subscription: detected by the probe after %v, subscriptions restored after %v (probe idle %v + timeout %v)",
		detected.Round(time.Millisecond), recovered.Round(time.Millisecond), n1.broker.Config().ProbeIdle, n1.broker.Config().ProbeTimeout)
}

// TestRedisSupervisionRestartsCrashedActors crashes a channel's subscription
// actor and a pub/sub connection actor: each is restarted, rebuilds its
// state from the bus, and the room keeps working.
func TestRedisSupervisionRestartsCrashedActors(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a := n1.dial("alice")
	b := n2.dial("bob")
	join(t, a, "sturdy")
	join(t, b, "sturdy")
	rs.WaitNumSub(roomChannel("sturdy"), 2, 5*time.Second)

	subs, err := n1.broker.Subscriptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := subs[roomChannel("sturdy")]
	if id == "" {
		t.Fatalf("no subscription actor for the room: %v", subs)
	}
	for i := range 3 {
		if !n1.node.Kill(id, true) {
			t.Fatalf("no actor %s", id)
		}
		content := seq("after-crash", i)
		_ = b.SendJSON(map[string]any{"type": "room_message", "room": "sturdy", "content": content})
		expect(t, a, "message after a subscription crash", roomChat("bob", "sturdy", content))
	}
	if got := n1.broker.Stats().SubRestarts; got != 3 {
		t.Fatalf("subscription restarts = %d, want 3", got)
	}

	// The rooms' connection actor: restarted, it re-subscribes from the bus.
	conn := "redis-n1/conn-1"
	if !n1.node.Kill(conn, true) {
		t.Fatalf("no actor %s", conn)
	}
	waitFor(t, "n1 reconnected", 5*time.Second, func() bool {
		return n1.broker.Stats().Reconnects == 1 && n1.node.BrokerState().Connected
	})
	_ = b.SendJSON(map[string]any{"type": "room_message", "room": "sturdy", "content": "after-conn-crash"})
	expect(t, a, "message after a connection crash", roomChat("bob", "sturdy", "after-conn-crash"))
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOperationsDocumentsBrokerMetrics: every broker metric a node exports
// is explained in docs/operations.md.
func TestOperationsDocumentsBrokerMetrics(t *testing.T) {
	rs := startRedis(t)
	n := startNode(t, rs.URL(), "n1")
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, line := range strings.Split(get(t, n.url+"/metrics"), "\n") {
		name, ok := strings.CutPrefix(line, "# HELP ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if !strings.HasPrefix(name, "switchboard_redis_") && !strings.HasPrefix(name, "switchboard_broker_") {
			continue
		}
		seen++
		if !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("%s is not documented in %s", name, operationsDoc)
		}
	}
	if seen < 30 {
		t.Fatalf("only %d broker metrics exported", seen)
	}
}
