package actors_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

func TestSessionWelcomeThenPresence(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice")
	if ev := a.conn.events(t)[0]; ev.Event != "welcome" || ev.Client != "alice" || ev.Node != "n1" {
		t.Fatalf("first event %+v", ev)
	}
	b := connect(t, n, "bob")
	a.conn.waitEvent(t, "bob connected", func(e event) bool { return e.Event == "user_connected" && e.UserID == "bob" })
	// A second connection of bob is not news; bob's last close is.
	b2 := connect(t, n, "bob")
	n.Deliver(b.pid, &actors.SocketClosed{})
	waitFor(t, "bob's first session gone", func() bool { return n.Metrics().Sessions.Load() == 2 })
	n.Deliver(b2.pid, &actors.SocketClosed{})
	a.conn.waitEvent(t, "bob disconnected", func(e event) bool { return e.Event == "user_disconnected" && e.UserID == "bob" })
	if c := a.conn.count(t, is("user_connected")); c != 1 {
		t.Fatalf("alice saw %d user_connected, want 1", c)
	}
	if c := a.conn.count(t, is("user_disconnected")); c != 1 {
		t.Fatalf("alice saw %d user_disconnected, want 1", c)
	}
	if c := b.conn.count(t, func(e event) bool { return e.UserID == "bob" }); c != 0 {
		t.Fatalf("bob was told about himself %d times", c)
	}
	if n.Metrics().Users.Load() != 1 {
		t.Fatalf("users = %d", n.Metrics().Users.Load())
	}
}

// Frames waiting in a session's mailbox leave with one Flush: the session
// sends itself one flush request behind what is already queued.
func TestSessionCoalescesFlushes(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice")
	a.conn.waitUntil(t, "welcome flushed", func() bool { return a.conn.flushes > 0 })
	before := a.conn.flushCount()

	held, release := a.conn.holdNext()
	const burst = 50
	for i := range burst {
		n.Deliver(a.pid, wire.ChatEvent("x", "", strconv.Itoa(i)))
	}
	<-held // the session is inside the first Enqueue; the other 49 are queued behind it
	release()
	a.conn.waitUntil(t, "burst delivered and flushed", func() bool {
		return len(decodeFrames(t, a.conn.frames)) == burst+1 && a.conn.flushes > before
	})
	if got := a.conn.flushCount() - before; got != 1 {
		t.Fatalf("%d frames took %d flushes, want 1", burst, got)
	}
	for i, ev := range a.conn.events(t)[1:] {
		if ev.Content != strconv.Itoa(i) {
			t.Fatalf("frame %d carries %q: order lost", i, ev.Content)
		}
	}
}

// A connection over its outbound budget is a slow consumer: closed 1013
// (discarding what is pending), counted, and nobody else notices.
func TestSessionSlowConsumer(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice")
	slow := connect(t, n, "slow")
	a.send(`{"type":"join_room","room":"r","id":1}`)
	slow.send(`{"type":"join_room","room":"r","id":1}`)
	slow.conn.waitEvent(t, "joined", ackOf("1"))
	a.conn.waitEvent(t, "joined", ackOf("1"))

	slow.conn.mu.Lock()
	slow.conn.budget = 1 // nothing more fits
	slow.conn.mu.Unlock()
	a.send(`{"type":"room_message","room":"r","content":"x","id":2}`)
	if by, code := slow.conn.waitClosed(t); by != "abort" || code != wire.CloseTryAgainLater {
		t.Fatalf("slow consumer closed by %s with %d", by, code)
	}
	a.conn.waitEvent(t, "own message", func(e event) bool { return e.Event == "chat" && e.Room == "r" })
	a.conn.waitEvent(t, "slow left", func(e event) bool { return e.Event == "user_left" && e.UserID == "slow" })
	a.conn.waitEvent(t, "slow disconnected", func(e event) bool { return e.Event == "user_disconnected" && e.UserID == "slow" })
	if n.Metrics().SlowClosed.Load() != 1 || n.Metrics().Sessions.Load() != 1 {
		t.Fatalf("slow closed %d, sessions %d", n.Metrics().SlowClosed.Load(), n.Metrics().Sessions.Load())
	}
}

func TestSessionRateLimitThenPolicyClose(t *testing.T) {
	n := newNode(t, func(c *actors.Config) { c.RatePerSecond, c.RateBurst, c.RateStrikes = 0.001, 2, 3 })
	a := connect(t, n, "alice")
	for i := range 4 {
		a.send(`{"type":"ping","id":` + strconv.Itoa(i) + `}`)
	}
	a.conn.waitEvent(t, "ack 1", ackOf("1"))
	for _, id := range []string{"2", "3"} {
		a.conn.waitEvent(t, "rate_limited "+id, func(e event) bool {
			return e.Event == "error" && e.Code == "rate_limited" && string(e.ID) == id
		})
	}
	a.send(`{"type":"ping"}`) // the third strike in a row
	if by, code := a.conn.waitClosed(t); by != "close" || code != wire.ClosePolicy {
		t.Fatalf("closed by %s with %d, want a 1008 close", by, code)
	}
	if n.Metrics().RateLimited.Load() != 3 || n.Metrics().PolicyClosed.Load() != 1 {
		t.Fatalf("rate limited %d, policy closed %d", n.Metrics().RateLimited.Load(), n.Metrics().PolicyClosed.Load())
	}
}

func TestSessionTokenExpiry(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice", func(o *actors.SessionOptions) { o.Expires = time.Now().Add(100 * time.Millisecond) })
	if by, code := a.conn.waitClosed(t); by != "close" || code != wire.CloseTokenExpired {
		t.Fatalf("closed by %s with %d, want a 4001 close", by, code)
	}
	waitFor(t, "session gone", func() bool { return n.Metrics().Sessions.Load() == 0 })
}

// However a session ends from outside - stopped or crashed - the client is
// told 1011, and the session's Stopped tells its rooms (roomLeave) and the
// hub (sessionEnded).
func TestSessionStoppedOrCrashed(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "stop", true: "crash"}[crash], func(t *testing.T) {
			n := newNode(t)
			a := connect(t, n, "alice")
			b := connect(t, n, "bob")
			for _, p := range []*peer{a, b} {
				p.send(`{"type":"join_room","room":"r","id":"j"}`)
				p.conn.waitEvent(t, "joined", ackOf(`"j"`))
			}
			if !n.Kill(b.pid.ID(), crash) {
				t.Fatal("session not found")
			}
			if by, code := b.conn.waitClosed(t); by != "abort" || code != wire.CloseInternal {
				t.Fatalf("closed by %s with %d, want 1011", by, code)
			}
			a.conn.waitEvent(t, "user_left", func(e event) bool { return e.Event == "user_left" && e.UserID == "bob" })
			a.conn.waitEvent(t, "user_disconnected", func(e event) bool { return e.Event == "user_disconnected" && e.UserID == "bob" })
			d := directory(t, n)
			if len(d.Sessions) != 1 || len(roomMembers(t, n, d.Rooms["r"])) != 1 {
				t.Fatalf("directory after kill: %s", d)
			}
			if want := map[bool]int64{false: 0, true: 1}[crash]; n.Metrics().SessionPanic.Load() != want {
				t.Fatalf("session panics %d, want %d", n.Metrics().SessionPanic.Load(), want)
			}
			if n.Kill(b.pid.ID(), false) {
				t.Fatal("a dead session was found again")
			}
		})
	}
}

// The read side ends first (SocketClosed): the session stops without
// writing a close of its own; gws has already closed the socket.
func TestSessionSocketClosed(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice")
	n.Deliver(a.pid, &actors.SocketClosed{})
	waitFor(t, "session gone", func() bool { return n.Metrics().Sessions.Load() == 0 && n.Metrics().Users.Load() == 0 })
	a.conn.mu.Lock()
	defer a.conn.mu.Unlock()
	if a.conn.closeBy != "" {
		t.Fatalf("session wrote a close (%s %d) after its socket closed", a.conn.closeBy, a.conn.code)
	}
}

// A join takes effect before anything the client sent after it, even though
// the room answers asynchronously: commands wait while a join is in flight.
//
// Without history the node delivers a room message locally as it
// publishes it, so the sender hears its own message before its leave; with
// history the message reaches the room when the broker brings it back
// numbered (TestSessionHearsItsOwnNumberedMessage).
func TestSessionOrdersCommandsBehindJoin(t *testing.T) {
	n := newNode(t, func(c *actors.Config) { c.HistorySize = actors.NoHistory })
	a := connect(t, n, "alice")
	a.send(`{"type":"join_room","room":"r","id":1}`)
	a.send(`{"type":"room_message","room":"r","content":"first","id":2}`)
	a.send(`{"type":"leave_room","room":"r","id":3}`)
	a.send(`{"type":"room_message","room":"r","content":"late","id":4}`)
	a.conn.waitEvent(t, "not_member for 4", func(e event) bool { return e.Code == "not_member" && string(e.ID) == "4" })
	a.conn.waitEvent(t, "the chat sent while joining", func(e event) bool { return e.Event == "chat" && e.Content == "first" })
	// Replies come in command order; the chat comes back from the room
	// whenever it fans out, but only after the join took effect.
	var replies []string
	chats, joinedAt, chatAt := 0, -1, -1
	for i, ev := range a.conn.events(t)[1:] {
		switch ev.Event {
		case "ack", "error":
			replies = append(replies, ev.Event+":"+string(ev.ID))
		case "user_joined":
			joinedAt = i
		case "chat":
			chats, chatAt = chats+1, i
		}
	}
	want := []string{"ack:1", "ack:2", "ack:3", "error:4"}
	if len(replies) != len(want) || chats != 1 || joinedAt < 0 || chatAt < joinedAt {
		t.Fatalf("replies %v (want %v), %d chats, joined at %d, chat at %d", replies, want, chats, joinedAt, chatAt)
	}
	for i := range want {
		if replies[i] != want[i] {
			t.Fatalf("replies %v, want %v", replies, want)
		}
	}
	waitFor(t, "room stopped", func() bool { return n.Metrics().Rooms.Load() == 0 })
}

func TestSessionDirectMessage(t *testing.T) {
	n := newNode(t)
	a := connect(t, n, "alice")
	b1 := connect(t, n, "bob")
	b2 := connect(t, n, "bob")
	a.send(`{"type":"direct_message","target_user":"bob","content":"psst","id":"d"}`)
	a.conn.waitEvent(t, "ack", ackOf(`"d"`))
	for _, b := range []*peer{b1, b2} {
		b.conn.waitEvent(t, "direct", func(e event) bool { return e.Event == "direct_message" && e.From == "alice" && e.Content == "psst" })
	}
	a.send(`{"type":"direct_message","target_user":"nobody","content":"x","id":"o"}`)
	a.conn.waitEvent(t, "user_offline", func(e event) bool { return e.Code == "user_offline" && string(e.ID) == `"o"` })
}

// Drain closes every session with 1001 through Close, so that what is
// already queued still reaches the client before the close frame.
func TestNodeDrainClosesSessions(t *testing.T) {
	n := newNode(t)
	peers := []*peer{connect(t, n, "a"), connect(t, n, "b")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if by, code := p.conn.waitClosed(t); by != "close" || code != wire.CloseGoingAway {
			t.Fatalf("closed by %s with %d, want a 1001 close", by, code)
		}
	}
	if !n.Draining() || n.Metrics().Sessions.Load() != 0 {
		t.Fatal("node not drained")
	}
}
