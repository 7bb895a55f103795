package main

import (
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
