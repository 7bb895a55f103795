package transport_test

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Heartbeat: the server pings every PingInterval; any frame from the client
// (a pong, a message) keeps it alive; after PingInterval + PongTimeout
// without one, the client is dropped. Intervals are short here so that the
// tests are quick; nothing asserts how long anything took.

const (
	testPingInterval = 100 * time.Millisecond
	testPongTimeout  = 150 * time.Millisecond
)

func withHeartbeat() []nodeOpt {
	return []nodeOpt{
		withActors(func(c *actors.Config) { c.PingInterval, c.PongTimeout = testPingInterval, testPongTimeout }),
	}
}

// A client that answers every ping outlives many ping intervals, each well
// past the silence a client is allowed.
func TestHeartbeatPingsAndKeepsResponsivePeers(t *testing.T) {
	n := startNode(t, nil, withHeartbeat()...)
	p := wireSession(t, n, "responsive")
	const want = 8 // 8 intervals: more than twice PingInterval + PongTimeout
	pings := 0
	for pings < want {
		f, err := p.next(t, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		switch f.op {
		case 0x9:
			pings++
			if len(f.payload) != 0 || !f.fin {
				t.Fatalf("heartbeat ping %+v", f)
			}
			p.write(t, maskedFrame(true, 0xA, f.payload))
		case 0x8:
			t.Fatalf("a responsive client was closed (%d) after %d pings", f.closeCode(), pings)
		}
	}
	p.write(t, maskedFrame(true, 0x1, []byte(`{"type":"ping","id":"alive"}`)))
	p.ack(t, `"alive"`)
}

// A client that stops answering is dropped; the drop is an ordinary end of
// session (user_disconnected, counts back), and a client connected at the
// same moment that does answer stays.
func TestHeartbeatDropsSilentPeers(t *testing.T) {
	n := startNode(t, nil, withHeartbeat()...)
	observer := n.dial("observer")
	alive := n.dial("alive")
	silent, err := wsclient.Dial(n.wsURL("/ws?client_id=silent"), wsclient.Options{NoAutoPong: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	raw := wireSession(t, n, "raw-silent") // reads, never answers

	if _, err := silent.WaitClosed(10 * time.Second); err != nil {
		t.Fatal("a client that never answers pings was not dropped")
	}
	if code, reason := silent.CloseCode(); code != 1000 || reason != wire.SilentReason {
		t.Errorf("silent client closed with %d %q, want 1000 %q", code, reason, wire.SilentReason)
	}
	expect(t, observer, "silent's departure", func(e *wsclient.Event) bool {
		return e.Event == "user_disconnected" && e.UserID == "silent"
	})
	pings := 0
	for {
		f, err := raw.next(t, 10*time.Second)
		if err != nil {
			t.Fatalf("raw silent client: %v after %d pings", err, pings)
		}
		if f.op == 0x9 {
			pings++
			continue
		}
		if f.op == 0x8 {
			break
		}
	}
	if pings == 0 {
		t.Fatal("the silent client was dropped without being pinged")
	}
	waitFor(t, "silent sessions gone", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 2 })
	if got := n.srv.Stats().SilentClosed; got != 2 {
		t.Errorf("silent_peers_closed = %d, want 2", got)
	}
	waitFor(t, "both drops counted as timeouts", 5*time.Second, func() bool {
		return metricValue(t, n, `switchboard_closes_total{code="timeout"}`) == 2
	})
	select {
	case <-alive.Closed():
		t.Fatal("a client that answers pings was dropped")
	default:
	}
	stillWorks(t, alive, "alive")
	stillWorks(t, observer, "observer")
}

// Any frame counts as a sign of life, not only pongs: a client that never
// answers pings but keeps talking is kept.
func TestHeartbeatAnyFrameCounts(t *testing.T) {
	n := startNode(t, nil, withHeartbeat()...)
	talker, err := wsclient.Dial(n.wsURL("/ws?client_id=talker"), wsclient.Options{NoAutoPong: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = talker.Close() })
	silent, err := wsclient.Dial(n.wsURL("/ws?client_id=silent"), wsclient.Options{NoAutoPong: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	// Talk, one ping command at a time, until the silent one is gone: the
	// talker has then been through the same silence window, answering none
	// of the heartbeat pings.
	for i := 0; ; i++ {
		select {
		case <-silent.Closed():
			stillWorks(t, talker, "talker")
			return
		case <-time.After(testPingInterval / 2):
		}
		if i > 200 {
			t.Fatal("the silent client was never dropped")
		}
		send(t, talker, map[string]any{"type": "ping"})
		expect(t, talker, "pong", isEvent("pong"))
	}
}
