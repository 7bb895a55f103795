package redis

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// The gate's transitions, one case per row of outState's table, and the
// events each state ignores.

var (
	testT0    = time.Unix(1000, 0)
	testPeers = []string{"n2", "n3"}
)

func upAt(epoch uint64) outEvent {
	return outEvent{kind: evUp, epoch: epoch, at: testT0.Add(time.Duration(epoch) * time.Second), peers: testPeers}
}

func downAt(epoch uint64) outEvent { return outEvent{kind: evDown, epoch: epoch} }

func unheardAt(epoch uint64) outEvent { return outEvent{kind: evUnheard, epoch: epoch} }

var overEv = outEvent{kind: evWindowOver}

// verifying is a gate in Verifying after the recovery of epoch, with a
// channel verified and a command held already.
func verifying(epoch uint64) gate {
	return gate{state: stateVerifying, seen: epoch, rec: recovery{
		epoch: epoch, since: testT0, peers: []string{"n2"}, verified: map[string]struct{}{"ch": {}}, held: true,
	}}
}

func TestGateTransitions(t *testing.T) {
	for _, c := range []struct {
		name   string
		from   gate
		ev     outEvent
		want   outState
		resend bool
		window bool // a new recovery window starts, for ev
	}{
		{"starting/up at epoch 1: open", gate{}, upAt(1), stateOpen, false, false},
		{"starting/up later: verifying", gate{}, upAt(3), stateVerifying, false, true},
		{"starting/down: starting", gate{}, downAt(2), stateStarting, false, false},
		{"open/down: down, resend", gate{state: stateOpen, seen: 2}, downAt(2), stateDown, true, false},
		{"open/up at the same epoch: open", gate{state: stateOpen, seen: 2}, upAt(2), stateOpen, false, false},
		{"open/up at a newer epoch: verifying, resend", gate{state: stateOpen, seen: 2}, upAt(3), stateVerifying, true, true},
		{"open/unheard: held", gate{state: stateOpen, seen: 2}, unheardAt(2), stateHeld, false, false},
		{"down/up: verifying", gate{state: stateDown, seen: 2}, upAt(3), stateVerifying, false, true},
		{"down/down at a newer epoch: down", gate{state: stateDown, seen: 2}, downAt(3), stateDown, false, false},
		{"held/up at the batch's epoch: held", gate{state: stateHeld, seen: 2, hold: 2}, upAt(2), stateHeld, false, false},
		{"held/up at the batch's epoch, newer than the last reading: held, resend", gate{state: stateHeld, seen: 2, hold: 3}, upAt(3), stateHeld, true, false},
		{"held/up at a newer epoch: verifying, resend", gate{state: stateHeld, seen: 2, hold: 2}, upAt(3), stateVerifying, true, true},
		{"held/down: down, resend", gate{state: stateHeld, seen: 2, hold: 2}, downAt(2), stateDown, true, false},
		{"verifying/window over: open", verifying(3), overEv, stateOpen, false, false},
		{"verifying/down: down, resend", verifying(3), downAt(3), stateDown, true, false},
		{"verifying/up at the same epoch: verifying, same window", verifying(3), upAt(3), stateVerifying, false, false},
		{"verifying/up at a newer epoch: verifying, resend, new window", verifying(3), upAt(4), stateVerifying, true, true},
		{"verifying/unheard: held", verifying(3), unheardAt(3), stateHeld, false, false},
		// Events a state ignores.
		{"starting/unheard", gate{}, unheardAt(0), stateStarting, false, false},
		{"starting/window over", gate{}, overEv, stateStarting, false, false},
		{"open/window over", gate{state: stateOpen, seen: 2}, overEv, stateOpen, false, false},
		{"down/unheard", gate{state: stateDown, seen: 2}, unheardAt(2), stateDown, false, false},
		{"down/window over", gate{state: stateDown, seen: 2}, overEv, stateDown, false, false},
		{"held/unheard", gate{state: stateHeld, seen: 2, hold: 2}, unheardAt(3), stateHeld, false, false},
		{"held/window over", gate{state: stateHeld, seen: 2, hold: 2}, overEv, stateHeld, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := c.from
			before := g.rec
			resend := g.transition(c.ev)
			if g.state != c.want || resend != c.resend {
				t.Fatalf("%v + %s = %v, resend %v; want %v, resend %v", c.from.state, evName(c.ev), g.state, resend, c.want, c.resend)
			}
			if c.ev.kind == evDown || c.ev.kind == evUp {
				if g.seen != c.ev.epoch {
					t.Errorf("last reading's epoch %d, want %d", g.seen, c.ev.epoch)
				}
			}
			if c.ev.kind == evUnheard && c.want == stateHeld && c.from.state != stateHeld && g.hold != c.ev.epoch {
				t.Errorf("held until a recovery newer than %d, want %d", g.hold, c.ev.epoch)
			}
			switch {
			case c.window:
				if g.rec.epoch != c.ev.epoch || !g.rec.since.Equal(c.ev.at) || !slices.Equal(g.rec.peers, c.ev.peers) ||
					g.rec.verified == nil || len(g.rec.verified) != 0 || g.rec.peersBack || g.rec.held {
					t.Errorf("window %+v, want a fresh one for epoch %d from %v with peers %v", g.rec, c.ev.epoch, c.ev.at, c.ev.peers)
				}
			case g.rec.epoch != before.epoch || !g.rec.since.Equal(before.since) || g.rec.held != before.held ||
				len(g.rec.verified) != len(before.verified):
				t.Errorf("window %+v changed, want %+v", g.rec, before)
			}
		})
	}
}

// TestGateRedisRestart walks the gate through a Redis restart seen as the
// writer sees it: the node starts, Redis goes away (the writer reads it
// down twice while it holds), comes back, and the window ends. The
// publishes of before are sent again once, at the first sight of the
// outage.
func TestGateRedisRestart(t *testing.T) {
	var g gate
	resends := 0
	for _, step := range []struct {
		ev   outEvent
		want outState
	}{
		{downAt(0), stateStarting},
		{upAt(1), stateOpen},
		{upAt(1), stateOpen},
		{downAt(1), stateDown},
		{downAt(1), stateDown},
		{upAt(2), stateVerifying},
		{upAt(2), stateVerifying},
		{overEv, stateOpen},
		{upAt(2), stateOpen},
	} {
		if g.transition(step.ev) {
			resends++
		}
		if g.state != step.want {
			t.Fatalf("after %s: %v, want %v", evName(step.ev), g.state, step.want)
		}
	}
	if resends != 1 {
		t.Fatalf("%d resends, want 1", resends)
	}
}

// TestGateMissedOutage: the connections went down and up while the writer
// was busy (a round trip, a backoff); its next reading is its first sight
// of the outage, in Open and in Verifying alike.
func TestGateMissedOutage(t *testing.T) {
	g := gate{state: stateOpen, seen: 1}
	if !g.transition(upAt(2)) || g.state != stateVerifying || g.rec.epoch != 2 {
		t.Fatalf("open, up at 2: %v, window %d", g.state, g.rec.epoch)
	}
	if !g.transition(upAt(3)) || g.state != stateVerifying || g.rec.epoch != 3 {
		t.Fatalf("verifying, up at 3: %v, window %d", g.state, g.rec.epoch)
	}
}

func TestOutStateNames(t *testing.T) {
	for s, want := range map[outState]string{
		stateStarting: "starting", stateOpen: "open", stateDown: "down", stateHeld: "held", stateVerifying: "verifying", 9: "unknown",
	} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
		if s.sends() != (s == stateOpen || s == stateVerifying) {
			t.Errorf("%v sends: %v", s, s.sends())
		}
	}
}

func evName(ev outEvent) string {
	switch ev.kind {
	case evDown:
		return fmt.Sprintf("downAt(%d)", ev.epoch)
	case evUp:
		return fmt.Sprintf("upAt(%d)", ev.epoch)
	case evUnheard:
		return fmt.Sprintf("unheardAt(%d)", ev.epoch)
	case evWindowOver:
		return "window over"
	}
	return "?"
}
