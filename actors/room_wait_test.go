package actors_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/internal/wiretest"
	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A room's catch-up read after a resubscription can find the stream
// trimmed past the room's position while the publications it lacks are
// still on their way through the subscription: a node that came back
// first sent its whole outbox backlog at once, and the stream keeps only
// the newest HistorySize of it (a Redis Sentinel failover did this). The
// room must wait for them rather than jump past them and drop them as
// copies when they come (docs/protocol.md, section 6).

// scriptBroker is a Broker whose reads the test answers and whose
// subscriptions' traffic the test sends: the fault's order of events,
// exactly. It confirms every subscription at once and accepts every
// publish.
type scriptBroker struct {
	mu    sync.Mutex
	host  port.ActorHost
	subs  map[string]port.Ref
	reads chan scriptRead
}

// scriptRead is one Broker.Read waiting for the test's answer.
type scriptRead struct {
	channel string
	q       actors.StreamQuery
	done    func(actors.StreamRead, error)
}

var _ actors.Broker = (*scriptBroker)(nil)

func newScriptBroker() *scriptBroker {
	return &scriptBroker{subs: map[string]port.Ref{}, reads: make(chan scriptRead, 16)}
}

func (b *scriptBroker) Start(h actors.BrokerHost) error { b.host = h.Actors; return nil }
func (b *scriptBroker) Subscribe(channel string, target port.Ref) {
	b.mu.Lock()
	b.subs[channel] = target
	b.mu.Unlock()
	b.host.Send(target, &actors.Subscribed{Channel: channel})
}
func (b *scriptBroker) Read(channel string, q actors.StreamQuery, done func(actors.StreamRead, error)) {
	b.reads <- scriptRead{channel: channel, q: q, done: done}
}
func (*scriptBroker) Append(string, *wire.Envelope, func(wire.Position, error)) error { return nil }
func (*scriptBroker) Publish(string, *wire.Envelope) error                            { return nil }
func (*scriptBroker) RoomMember(string, string, int)                                  {}
func (*scriptBroker) Presence(_ string, done func(wire.Presence, error))              { done(wire.Presence{}, nil) }
func (*scriptBroker) Unsubscribe(string, port.Ref)                                    {}
func (*scriptBroker) SendDirect(_ string, _ *wire.Envelope, done func(int, error))    { done(0, nil) }
func (*scriptBroker) UserOnline(string)                                               {}
func (*scriptBroker) UserOffline(string)                                              {}
func (*scriptBroker) State() actors.BrokerState {
	return actors.BrokerState{Kind: "script", Connected: true}
}
func (*scriptBroker) Close(context.Context) error { return nil }

// target is the room actor subscribed to channel.
func (b *scriptBroker) target(t *testing.T, channel string) port.Ref {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	ref, ok := b.subs[channel]
	if !ok {
		t.Fatalf("nothing subscribed to %s", channel)
	}
	return ref
}

// nextRead waits for the room's next read.
func (b *scriptBroker) nextRead(t *testing.T) scriptRead {
	t.Helper()
	select {
	case rd := <-b.reads:
		return rd
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a read of the stream")
		return scriptRead{}
	}
}

// live sends the publications from..to of epoch on channel's subscription.
func (b *scriptBroker) live(t *testing.T, channel, epoch string, from, to uint64) {
	t.Helper()
	ref := b.target(t, channel)
	for off := from; off <= to; off++ {
		b.host.Send(ref, streamPub(epoch, off))
	}
}

// streamPub is the room publication at offset off of epoch, as another
// node's broker delivers it; its content is its offset.
func streamPub(epoch string, off uint64) *actors.Inbound {
	pos := wire.Position{Offset: off, Epoch: epoch}
	payload := wire.ChatJSON("ada", "r", strconv.FormatUint(off, 10))
	return actors.InboundOf(&wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n2", Pos: pos, Payload: payload})
}

func streamPubs(epoch string, from, to uint64) []*actors.Inbound {
	var out []*actors.Inbound
	for off := from; off <= to; off++ {
		out = append(out, streamPub(epoch, off))
	}
	return out
}

// positioned is a room event with its place in the stream.
type positioned struct {
	Event   string          `json:"event"`
	Content string          `json:"content"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	ID      json.RawMessage `json:"id"`
}

// sent is what c was sent of the room's stream so far (chat events), and
// the ack of its join with id 1 if it came.
func sent(t *testing.T, c *fakeConn) (pubs []positioned, ack *positioned) {
	t.Helper()
	c.mu.Lock()
	frames := c.frames
	c.mu.Unlock()
	for _, f := range frames {
		fr, _, bad := wiretest.ReadFrame(f)
		if bad != "" || fr.Opcode != wire.OpText {
			continue
		}
		var ev positioned
		if err := json.Unmarshal(fr.Payload, &ev); err != nil {
			t.Fatalf("bad event %s: %v", fr.Payload, err)
		}
		switch {
		case ev.Event == "chat":
			pubs = append(pubs, ev)
		case ev.Event == "ack" && string(ev.ID) == "1":
			ack = &ev
		}
	}
	return pubs, ack
}

// run is the offsets from..to of one epoch of the stream.
type run struct {
	epoch    string
	from, to uint64
}

// expectStream waits until c was sent as many publications as runs hold,
// then checks that they are exactly those, once each, in order.
func expectStream(t *testing.T, who string, c *fakeConn, runs ...run) {
	t.Helper()
	var want []positioned
	for _, r := range runs {
		for off := r.from; off <= r.to; off++ {
			want = append(want, positioned{Offset: off, Epoch: r.epoch})
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	pubs, _ := sent(t, c)
	for len(pubs) < len(want) && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
		pubs, _ = sent(t, c)
	}
	var wrong []string
	for i := range max(len(pubs), len(want)) {
		var got, exp string
		if i < len(pubs) {
			got = pubs[i].Epoch + ":" + strconv.FormatUint(pubs[i].Offset, 10)
			if pubs[i].Content != strconv.FormatUint(pubs[i].Offset, 10) {
				got += "(content " + pubs[i].Content + ")"
			}
		}
		if i < len(want) {
			exp = want[i].Epoch + ":" + strconv.FormatUint(want[i].Offset, 10)
		}
		if got != exp && len(wrong) < 10 {
			wrong = append(wrong, "#"+strconv.Itoa(i)+" "+exp+"->"+got)
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%s was sent %d publications, want %d: %v (first differences, want->got: %s)",
			who, len(pubs), len(want), runs, strings.Join(wrong, " "))
	}
}

// ackOffset waits for the ack of c's join (id 1) and returns its offset.
func ackOffset(t *testing.T, who string, c *fakeConn) uint64 {
	t.Helper()
	c.waitEvent(t, who+"'s ack", ackOf("1"))
	_, ack := sent(t, c)
	return ack.Offset
}

// waitRoomNode starts a node on a script broker with a room "r" at
// position pos of epoch (offsets 1..pos fanned out to alice, its member).
func waitRoomNode(t *testing.T, epoch string, pos uint64) (*actors.Node, *scriptBroker, *peer) {
	t.Helper()
	if epoch != "e1" || pos != waitPos {
		t.Fatal("the room starts at offset 20 of e1")
	}
	return waitRoomNodeOn(t, newScriptBroker(), 2*time.Second)
}

// waitRoomNodeOn is waitRoomNode on b, with the join retry given (the
// room's reads and waits last at most half of it).
func waitRoomNodeOn(t *testing.T, b *scriptBroker, joinRetry time.Duration) (*actors.Node, *scriptBroker, *peer) {
	t.Helper()
	const epoch, pos = "e1", waitPos
	n := newNode(t, func(c *actors.Config) { c.Broker = b; c.JoinRetry = joinRetry })
	alice := connect(t, n, "alice")
	alice.send(`{"type":"join_room","room":"r","id":1}`)
	rd := b.nextRead(t)
	if !rd.q.PositionOnly {
		t.Fatalf("first read %+v, want the position", rd.q)
	}
	rd.done(actors.StreamRead{Pos: wire.Position{Epoch: epoch}}, nil)
	if off := ackOffset(t, "alice", alice.conn); off != 0 {
		t.Fatalf("alice joined at %d, want 0", off)
	}
	b.live(t, rd.channel, epoch, 1, pos)
	expectStream(t, "alice", alice.conn, run{epoch, 1, pos})
	return n, b, alice
}

// resubscribe tells the room its subscription came back, and returns the
// catch-up read it asks for.
func resubscribe(t *testing.T, b *scriptBroker, channel string) scriptRead {
	t.Helper()
	b.host.Send(b.target(t, channel), &actors.Subscribed{Channel: channel})
	rd := b.nextRead(t)
	if rd.q.After != waitPos || rd.q.Epoch != "e1" || rd.q.PositionOnly {
		t.Fatalf("catch-up read %+v, want after %d of e1", rd.q, waitPos)
	}
	return rd
}

// The room is at 20 when its subscription comes back; meanwhile another
// node's outbox sent 436 publications at once, and the stream keeps the
// newest 100 of them.
const (
	waitPos     = 20
	waitBacklog = 436
	waitKept    = 100
)

var roomR = actors.RoomChannel("websocket", "r")

// The catch-up read after a resubscription returns only the newest 100 of
// the 436 publications sent while the room's subscription was down; the
// live copies of all 436 arrive after the read's answer. Every member gets
// all 436, once, in order, and no gap is counted: in the same epoch, and
// in a new one (a new primary without the stream's hash numbers from 1).
func TestRoomWaitsForPublicationsHistoryTrimmed(t *testing.T) {
	for _, tc := range []struct {
		name, epoch string
		from        uint64 // the backlog's first offset
	}{
		{"same epoch", "e1", waitPos + 1},
		{"new epoch", "e2", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, b, alice := waitRoomNode(t, "e1", waitPos)
			top := tc.from + waitBacklog - 1
			rd := resubscribe(t, b, roomR)
			// A join that comes while the room catches up waits for the
			// position it must be told.
			bob := connect(t, n, "bob")
			bob.send(`{"type":"join_room","room":"r","id":1}`)
			// The answer reaches the room before the live copies: they are
			// sent from this goroutine after it.
			rd.done(actors.StreamRead{Pos: wire.Position{Offset: top, Epoch: tc.epoch}, Pubs: streamPubs(tc.epoch, top-waitKept+1, top)}, nil)
			b.live(t, roomR, tc.epoch, tc.from, top)

			first := run{"e1", 1, waitPos}
			expectStream(t, "alice", alice.conn, first, run{tc.epoch, tc.from, top})
			if off := ackOffset(t, "bob", bob.conn); off != top {
				t.Fatalf("bob joined at %d, want %d", off, top)
			}
			b.live(t, roomR, tc.epoch, top+1, top+1)
			expectStream(t, "bob", bob.conn, run{tc.epoch, top + 1, top + 1})
			expectStream(t, "alice", alice.conn, first, run{tc.epoch, tc.from, top + 1})
			if g := n.Metrics().HistoryGaps.Load(); g != 0 {
				t.Fatalf("%d publications counted as a gap, want 0", g)
			}
			if g := n.Metrics().HistoryReadTimeouts.Load(); g != 0 {
				t.Fatalf("%d read timeouts, want 0", g)
			}
		})
	}
}

// When the missing publications never come (the subscription lost them
// too), the room waits at most half the join retry from its read, fanning
// out those that do come, then counts what is missing as a gap and goes on
// from the newest kept; a join that came meanwhile is answered with that
// position.
func TestRoomWaitEndsWithAGapWhenPublicationsNeverCome(t *testing.T) {
	before := runtime.NumGoroutine()
	n, b, alice := waitRoomNode(t, "e1", waitPos)
	top := uint64(waitPos + waitBacklog)
	kept := top - waitKept + 1
	rd := resubscribe(t, b, roomR)
	rd.done(actors.StreamRead{Pos: wire.Position{Offset: top, Epoch: "e1"}, Pubs: streamPubs("e1", kept, top)}, nil)
	// 21..200 come live; 201..356 were lost.
	const came = 200
	b.live(t, roomR, "e1", waitPos+1, came)
	expectStream(t, "alice", alice.conn, run{"e1", 1, came})

	bob := connect(t, n, "bob")
	bob.send(`{"type":"join_room","room":"r","id":1}`)
	if off := ackOffset(t, "bob", bob.conn); off != top {
		t.Fatalf("bob joined at %d, want %d (the newest kept, after the wait)", off, top)
	}
	expectStream(t, "alice", alice.conn, run{"e1", 1, came}, run{"e1", kept, top})
	if g, want := n.Metrics().HistoryGaps.Load(), int64(kept-came-1); g != want {
		t.Fatalf("%d publications counted as a gap, want %d", g, want)
	}
	if g := n.Metrics().HistoryReadTimeouts.Load(); g != 0 {
		t.Fatalf("%d read timeouts, want 0: the read answered", g)
	}
	// The room goes on from there.
	b.live(t, roomR, "e1", top+1, top+1)
	expectStream(t, "bob", bob.conn, run{"e1", top + 1, top + 1})
	expectStream(t, "alice", alice.conn, run{"e1", 1, came}, run{"e1", kept, top + 1})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= before })
}

// When the live publications skip some of the missing ones (published
// before the subscription came back: neither history nor the subscription
// has them), the room does not wait for the deadline to go on: the
// subscription delivers in offset order, so those will not come. It
// counts them as a gap and fans out the first live one at once, and still
// every later one, live or read. The join retry here is 20 s, so a wait
// for the deadline (10 s) would outlast expectStream's.
func TestRoomWaitSkipsOnlyWhatLiveTrafficSkipped(t *testing.T) {
	b := newScriptBroker()
	_, _, alice := waitRoomNodeOn(t, b, 20*time.Second)
	top := uint64(waitPos + waitBacklog)
	kept := top - waitKept + 1
	rd := resubscribe(t, b, roomR)
	rd.done(actors.StreamRead{Pos: wire.Position{Offset: top, Epoch: "e1"}, Pubs: streamPubs("e1", kept, top)}, nil)
	// 21..199 were published before the subscription came back.
	const from = 200
	b.live(t, roomR, "e1", from, top+1)
	expectStream(t, "alice", alice.conn, run{"e1", 1, waitPos}, run{"e1", from, top + 1})
	if g, want := alice.node.Metrics().HistoryGaps.Load(), int64(from-waitPos-1); g != want {
		t.Fatalf("%d publications counted as a gap, want %d", g, want)
	}
}

// A room actor stopped with members (killed, or stopped after repeated
// panics): what is published while no actor of the room is there is not
// fanned out, and the room's next actor starts at the stream's top. Each
// member re-joins from the last publication it was sent and recovers the
// rest, instead of going on past a silent gap (the chaos suite's
// room-stop round saw offset 27 after 25).
func TestMembersOfAStoppedRoomRecoverWhatCameMeanwhile(t *testing.T) {
	n, b, alice := waitRoomNode(t, "e1", waitPos)
	old := directory(t, n).Rooms["r"]
	if !n.Kill(old, false) {
		t.Fatal("the room actor was not found")
	}
	// The next actor subscribes, reads its position: two were published
	// while no actor of the room was there.
	pos := b.nextRead(t)
	if !pos.q.PositionOnly {
		t.Fatalf("the new room's first read %+v, want its position", pos.q)
	}
	pos.done(actors.StreamRead{Pos: wire.Position{Offset: waitPos + 2, Epoch: "e1"}}, nil)
	rec := b.nextRead(t)
	if rec.q.After != waitPos || rec.q.Epoch != "e1" || rec.q.MaxBytes <= 0 {
		t.Fatalf("alice's re-join read %+v, want a recovery after %d of e1 within her budget", rec.q, waitPos)
	}
	rec.done(actors.StreamRead{Pos: wire.Position{Offset: waitPos + 2, Epoch: "e1"}, Pubs: streamPubs("e1", waitPos+1, waitPos+2)}, nil)
	b.live(t, roomR, "e1", waitPos+3, waitPos+3)
	expectStream(t, "alice", alice.conn, run{"e1", 1, waitPos + 3})
	if id := directory(t, n).Rooms["r"]; id == old || id == "" {
		t.Fatalf("room actor %q after the kill, want a new one", id)
	}
}
