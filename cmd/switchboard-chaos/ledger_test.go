package main

import (
	"fmt"
	"testing"
	"time"
)

// The ledger is the suite's judge; these cases pin its rules so that a
// broken node cannot pass by a lenient verdict.
func TestLedgerVerdicts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := newLedger(250*time.Millisecond, time.Second, 500*time.Millisecond)
	open := func(id string, client, node, openedMs int, rooms ...string) *conn {
		c := &conn{id: id, client: client, user: id, node: node, opened: at(openedMs)}
		l.addConn(c)
		for _, r := range rooms {
			l.joined(c, r, at(openedMs+10))
		}
		return c
	}
	a := open("a", 0, 0, 0, "r")
	b := open("b", 1, 1, 0, "r")
	c := open("c", 2, 0, 0, "r")
	open("late", 3, 1, 4900, "r") // joined 10 ms before m5: not owed it
	dying := open("dying", 4, 1, 0, "r")
	l.markDead(dying, at(5300)) // dies 300 ms after m5: mid-flight, not owed it

	seq := 0
	send := func(id string, from *conn, k kind, sentMs int, target int) *message {
		seq++
		m := &message{id: id, seq: seq, kind: k, room: "r", from: from, sent: at(sentMs), target: target}
		if k != kindRoom {
			m.room = ""
		}
		l.sent(m)
		return m
	}
	// m1: acked, delivered to every member.
	send("m1", a, kindRoom, 1000, -1)
	l.reply("m1", true, "")
	for _, r := range []*conn{a, b, c, dying} {
		l.delivered("m1", r)
	}
	// m2: acked, b never got it and nothing excuses that: lost.
	send("m2", a, kindRoom, 2000, -1)
	l.reply("m2", true, "")
	l.delivered("m2", a)
	l.delivered("m2", c)
	l.delivered("m2", dying)
	// m3: refused: nobody is owed it.
	send("m3", a, kindChat, 3000, -1)
	l.reply("m3", false, "unavailable")
	// m4: acked, b missed it during a cross-node fault window: excused.
	w := &window{fault: "redis-stop", scope: scopeCrossNode, from: at(3900)}
	l.openWindow(w)
	send("m4", a, kindRoom, 4000, -1)
	l.reply("m4", true, "")
	l.delivered("m4", a)
	l.delivered("m4", c)
	l.delivered("m4", dying)
	l.closeWindow(w, at(4200))
	// m5: acked after the window; late and dying are not owed it; c got it twice.
	send("m5", b, kindRoom, 5000, -1)
	l.reply("m5", true, "")
	for _, r := range []*conn{a, b, c, c} {
		l.delivered("m5", r)
	}
	// m6: a direct message to b, no reply while a is live: unanswered.
	send("m6", a, kindDirect, 6000, 1)
	// m7: a direct message from dying, no reply, dying is dead: unconfirmed.
	send("m7", dying, kindDirect, 5200, 0)
	// m8, m9: chats to everybody but their sender; the copies arrive in
	// the wrong order.
	send("m8", c, kindChat, 6900, -1)
	send("m9", c, kindChat, 7000, -1)
	l.reply("m8", true, "")
	l.reply("m9", true, "")
	for _, r := range []*conn{a, b} {
		l.delivered("m9", r)
		l.delivered("m8", r)
	}

	got := l.evaluate()
	want := tally{
		Sent: 9, Acked: 6, Refused: 1, Unconfirmed: 1, Unanswered: 1,
		// m1: a b c dying; m2: a b c dying; m4: a b c dying; m5: a b c;
		// m8, m9: a b late (dying is dead by then).
		Expected:  4 + 4 + 4 + 3 + 3 + 3,
		Delivered: 4 + 3 + 3 + 3 + 2 + 2,
		Excused:   1,
		Lost:      1 + 1 + 1, // m2 to b; m8 and m9 to late
		Dups:      1,
		Reordered: 2,
	}
	if got.Sent != want.Sent || got.Acked != want.Acked || got.Refused != want.Refused ||
		got.Unconfirmed != want.Unconfirmed || got.Unanswered != want.Unanswered {
		t.Errorf("outcomes: got %+v", got)
	}
	if got.Expected != want.Expected || got.Delivered != want.Delivered || got.Excused != want.Excused ||
		got.Lost != want.Lost || got.Dups != want.Dups || got.Reordered != want.Reordered {
		t.Errorf("pairs: got expected %d delivered %d excused %d lost %d dups %d reordered %d; want %d %d %d %d %d %d",
			got.Expected, got.Delivered, got.Excused, got.Lost, got.Dups, got.Reordered,
			want.Expected, want.Delivered, want.Excused, want.Lost, want.Dups, want.Reordered)
	}
	if got.ExcusedBy["redis-stop"] != 1 || got.RefusedBy["unavailable"] != 1 {
		t.Errorf("reasons: excused %v refused %v", got.ExcusedBy, got.RefusedBy)
	}
	if len(got.Examples) == 0 {
		t.Error("no example of the lost and unanswered messages")
	}
	// Everything evaluated is forgotten; a copy arriving now is late.
	l.delivered("m1", a)
	if again := l.evaluate(); again.Sent != 0 || again.Late != 1 {
		t.Errorf("second evaluation: %+v", again)
	}
}

// A window scoped to one node excuses only the pairs whose path crosses it.
func TestWindowScopes(t *testing.T) {
	on := func(node int) *conn { return &conn{node: node} }
	room := &message{kind: kindRoom, room: "r", from: on(0)}
	chat := &message{kind: kindChat, from: on(0)}
	cases := []struct {
		w    window
		m    *message
		r    *conn
		want bool
	}{
		{window{scope: scopeCrossNode}, chat, on(1), true},
		{window{scope: scopeCrossNode}, chat, on(0), false},
		{window{scope: scopeFromNode, node: 0}, chat, on(1), true},
		{window{scope: scopeFromNode, node: 1}, chat, on(0), false},
		{window{scope: scopeIntoNode, node: 1}, chat, on(1), true},
		{window{scope: scopeIntoNode, node: 0}, chat, on(0), false},
		{window{scope: scopeRoomOnNode, node: 1, room: "r"}, room, on(1), true},
		{window{scope: scopeRoomOnNode, node: 1, room: "q"}, room, on(1), false},
		{window{scope: scopeRoomOnNode, node: 1, room: "r"}, chat, on(1), false},
	}
	for i, c := range cases {
		if got := c.w.covers(c.m, c.r); got != c.want {
			t.Errorf("case %d: covers = %v, want %v", i, got, c.want)
		}
	}
}

// With history on, a room message is owed to a client across its
// reconnections with since; the stream rules catch what per-connection
// counting cannot: a copy on the old and the new connection, an offset
// skipped or repeated, a recovered:false with no reason.
func TestLedgerRecovery(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := newLedger(250*time.Millisecond, time.Second, 500*time.Millisecond)
	l.enableRecovery(10)
	const e = "E1"
	open := func(id string, client, node, openedMs int) *conn {
		c := &conn{id: id, client: client, user: id, node: node, opened: at(openedMs)}
		l.addConn(c)
		return c
	}
	pos := func(o uint64) position { return position{o, e} }
	yes, no := true, false
	seq := 0
	send := func(id string, from *conn, sentMs int) {
		seq++
		l.sent(&message{id: id, seq: seq, kind: kindRoom, room: "r", from: from, sent: at(sentMs), target: -1})
		l.reply(id, true, "")
	}

	a := open("a#1", 0, 0, 0)
	l.roomJoined(a, "r", nil, pos(0), true, nil, at(10), nil)
	b1 := open("b#1", 1, 1, 0)
	l.roomJoined(b1, "r", nil, pos(0), true, nil, at(10), nil)

	// m1..m3 reach both; b's connection dies after m1.
	send("m1", a, 1000)
	l.roomChat(a, "r", "m1", pos(1))
	l.roomChat(b1, "r", "m1", pos(1))
	l.markDead(b1, at(1100))
	send("m2", a, 1500)
	send("m3", a, 1600)
	l.roomChat(a, "r", "m2", pos(2))
	l.roomChat(a, "r", "m3", pos(3))
	// b comes back elsewhere with since 1: m2 and m3 come before the ack.
	if p, ok := l.since(1, "r"); !ok || p != pos(1) {
		t.Fatalf("since = %v %v, want 1/E1", p, ok)
	}
	b2 := open("b#2", 1, 2, 2000)
	s := pos(1)
	l.roomJoined(b2, "r", &s, pos(3), true, &yes, at(2010), []heldChat{{"m2", pos(2)}, {"m3", pos(3)}})
	// m4: b gets it twice (the old connection's copy and a resend), and
	// its stream sees offset 4 twice.
	send("m4", a, 3000)
	l.roomChat(a, "r", "m4", pos(4))
	l.roomChat(b2, "r", "m4", pos(4))
	l.roomChat(b2, "r", "m4", pos(4))
	// m5 skipped at b (a silent gap), m6 arrives.
	send("m5", a, 3100)
	send("m6", a, 3200)
	l.roomChat(a, "r", "m5", pos(5))
	l.roomChat(a, "r", "m6", pos(6))
	l.roomChat(b2, "r", "m6", pos(6))

	got := l.evaluate()
	// Owed: 6 messages to a and to b; b missed m5 (lost), got m4 twice.
	if got.Expected != 12 || got.Delivered != 11 || got.Lost != 1 || got.RoomDups != 1 {
		t.Errorf("per client: expected %d delivered %d lost %d dups %d; want 12 11 1 1", got.Expected, got.Delivered, got.Lost, got.RoomDups)
	}
	if got.Recovered != 1 || got.RecoveredChats != 2 || got.StreamGaps != 1 || got.StreamRepeats != 1 {
		t.Errorf("streams: recovered %d (%d chats), gaps %d, repeats %d; want 1 (2), 1, 1", got.Recovered, got.RecoveredChats, got.StreamGaps, got.StreamRepeats)
	}

	// recovered:false: within history and the same epoch is unexplained;
	// past the history size it is "trimmed" and excuses its hole.
	l.markDead(b2, at(4000))
	for i := 7; i <= 20; i++ {
		id := fmt.Sprintf("n%d", i)
		send(id, a, 4000+10*i)
		l.roomChat(a, "r", id, pos(uint64(i)))
	}
	b3 := open("b#3", 1, 0, 5000)
	s = pos(6)
	l.roomJoined(b3, "r", &s, pos(20), true, &no, at(5010), nil)
	c1 := open("c#1", 2, 0, 0)
	l.roomJoined(c1, "r", nil, pos(0), true, nil, at(10), nil)
	l.markDead(c1, at(4000))
	c2 := open("c#2", 2, 1, 5000)
	s = pos(18)
	l.roomJoined(c2, "r", &s, pos(20), true, &no, at(5010), nil)
	got = l.evaluate()
	if got.RecoveredFalse[lostTrimmed] != 1 || got.RecoveredFalse[lostOther] != 1 || got.HoleOffsets != 16 {
		t.Errorf("recovered:false %v, hole %d; want trimmed=1 unexplained=1, 14+2", got.RecoveredFalse, got.HoleOffsets)
	}
	// n7..n20 are owed to a, b and c. b missed them all, excused by its
	// hole (6, 20]; c's hole (18, 20] excuses n19 and n20 only: it has no
	// copy of n7..n18, which its since claims it had: lost.
	if got.Excused != 14+2 || got.ExcusedBy["recovered:false"] != 16 || got.Lost != 12 {
		t.Errorf("holes: excused %d (%v) lost %d; want 16 16 12", got.Excused, got.ExcusedBy, got.Lost)
	}
	if got.streamProblems() != 1 {
		t.Errorf("stream problems %d, want 1 (the unexplained recovered:false)", got.streamProblems())
	}

	// A join with since answered without the recovered flag (a node that
	// ignored since): what was sent meanwhile is lost, and the ack's
	// position past the client's is a silent gap.
	l.markDead(b3, at(6000))
	send("p21", a, 6100)
	send("p22", a, 6200)
	for _, r := range []*conn{a, c2} {
		l.roomChat(r, "r", "p21", pos(21))
		l.roomChat(r, "r", "p22", pos(22))
	}
	b4 := open("b#4", 1, 1, 7000)
	s = pos(20)
	l.roomJoined(b4, "r", &s, pos(22), true, nil, at(7010), nil)
	got = l.evaluate()
	if got.Lost != 2 || got.NoRecoveredFlag != 1 || got.StreamGaps != 2 {
		t.Errorf("since ignored: lost %d, acks without recovered %d, gaps %d; want 2 1 2", got.Lost, got.NoRecoveredFlag, got.StreamGaps)
	}
}
