package actors

import (
	"fmt"
	"github.com/asynkron/protoactor-go/actor"
	"slices"
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
// were dropped. A silent peer is still dropped once it has had its pong
// timeout, without waiting a whole ping interval for the next check (any
// jitter that delayed the tick more than the check cost a vanished client
// a second under the chaos suite's load).
func TestHeartbeatCheckWaitsForThePingsPongTimeout(t *testing.T) {
	const pongTimeout = 300 * time.Millisecond
	n := startQuietNode(t, Config{Broker: newBenchBroker(), NodeID: "n1", PingInterval: time.Hour, PongTimeout: pongTimeout})
	silent := &heardConn{heard: time.Now().Add(-time.Minute)}
	healthy := &heardConn{heard: time.Now().Add(time.Minute)} // answers every ping
	pids := []*actor.PID{pidOf(n.Connect(silent, SessionOptions{User: "u"})), pidOf(n.Connect(healthy, SessionOptions{User: "v"}))}
	tick := time.Now()   // the tick was made now, and reaches the sessions late
	pinged := time.Now() // the pings go out after this
	for _, pid := range pids {
		n.root.Send(pid, heartbeatTick{seq: 1})
	}
	for _, pid := range pids {
		n.root.Send(pid, &heartbeatCheck{since: tick, seq: 1})
		// A ping command behind the check: once its pong is queued, the
		// check has been handled.
		n.root.Send(pid, wire.DecodeCommand([]byte(`{"type":"ping"}`)))
	}
	for _, c := range []*heardConn{silent, healthy} {
		waitUntil(t, "the pong behind the check", func() bool {
			fr, _ := c.snapshot()
			return slices.ContainsFunc(fr, func(f string) bool { return strings.Contains(f, `"pong"`) })
		})
	}
	if silent.dropped.Load() && time.Since(pinged) < pongTimeout {
		t.Fatal("a peer was dropped by a check that came right after its ping went out")
	}
	// No other check comes: the session judges the tick again itself,
	// once the ping is a pong timeout old.
	waitUntil(t, "the silent peer dropped", silent.dropped.Load)
	if took := time.Since(pinged); took < pongTimeout {
		t.Fatalf("the silent peer was dropped %v after its ping, before its pong timeout (%v)", took, pongTimeout)
	}
	time.Sleep(pongTimeout)
	if healthy.dropped.Load() {
		t.Fatal("a peer heard since the tick was dropped")
	}
}

// A pong timeout longer than two ping intervals: when a check comes, the
// session no longer holds the ping of its tick (it keeps two), and judges
// by the oldest it holds. The silent peer is dropped all the same, and a
// check the session schedules itself ends: it carries its deadline, where
// judging it again by the pings, which had moved on, scheduled it again
// without end, one more chain at every tick.
func TestSilentPeerIsDroppedWithALongPongTimeout(t *testing.T) {
	for _, pong := range []time.Duration{110 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		n := startQuietNode(t, Config{Broker: newBenchBroker(), NodeID: "n1", PingInterval: 20 * time.Millisecond, PongTimeout: pong})
		c := &heardConn{heard: time.Now().Add(-time.Minute)}
		n.Connect(c, SessionOptions{User: "u"})
		waitUntil(t, fmt.Sprint("the silent peer dropped with a pong timeout of ", pong), c.dropped.Load)
	}
}
