package actors

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// heardConn is a recConn whose peer was last heard at a fixed time and that
// records being dropped for silence.
type heardConn struct {
	recConn
	heard   time.Time
	dropped atomic.Bool
}

func (c *heardConn) LastHeard() time.Time { return c.heard }
func (c *heardConn) DropSilent()          { c.dropped.Store(true) }

// A heartbeat check that reaches a session less than a pong timeout after
// the session queued its ping does not drop the peer, however old the tick
// it belongs to: the tick and the check both wait in the hub's and the
// session's mailboxes, and on a node busy with a mass exit the check came
// 2.15 s after its tick while the ping went out late, so healthy clients
// were dropped. The peer is still dropped once it has had its pong timeout.
func TestHeartbeatCheckWaitsForThePingsPongTimeout(t *testing.T) {
	const pongTimeout = 200 * time.Millisecond
	n := startQuietNode(t, Config{Broker: newBenchBroker(), NodeID: "n1", PingInterval: time.Hour, PongTimeout: pongTimeout})
	c := &heardConn{heard: time.Now().Add(-time.Minute)}
	pid := pidOf(n.Connect(c, SessionOptions{User: "u"}))
	tick := time.Now() // the tick was made now, and reaches the session late
	n.root.Send(pid, heartbeatTick{seq: 1})
	n.root.Send(pid, &heartbeatCheck{since: tick, seq: 1})
	// A ping command behind the check: once its pong is queued, the check
	// has been handled.
	n.root.Send(pid, wire.DecodeCommand([]byte(`{"type":"ping"}`)))
	waitUntil(t, "the pong behind the check", func() bool {
		fr, _ := c.snapshot()
		return len(fr) > 0 && strings.Contains(fr[len(fr)-1], `"pong"`)
	})
	if c.dropped.Load() {
		t.Fatal("a peer was dropped by a check that came right after its ping went out")
	}
	// Still silent a pong timeout after the ping: the next check drops it.
	waitUntil(t, "the silent peer dropped", func() bool {
		n.root.Send(pid, &heartbeatCheck{since: tick, seq: 1})
		return c.dropped.Load()
	})
}
