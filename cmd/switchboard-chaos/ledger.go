package main

import (
	"fmt"
	"sync"
	"time"
)

// The ledger records every numbered message the suite's clients send and
// every copy they receive, and decides after each round what happened to
// each (message, recipient) pair. The rules are those of docs/reliability.md:
//
//   - A message is "refused" when its sender got an error for its id,
//     "acked" when it got an ack, "unconfirmed" when the sender's connection
//     ended before either (the client cannot know), and "unanswered" when a
//     live sender got neither: that is a violation.
//   - An acked message must reach every live member: every connection that
//     was a recipient (room member, other user for chat, the target user for
//     a direct message) from at least joinGrace before the send until at
//     least liveGrace after it. A member killed or disconnected mid-flight is
//     not live, and owes nothing.
//   - A live recipient that did not get it is "excused" when a fault window
//     covers the send and the pair's path (the fault makes delivery
//     at-most-once there: a broker outage between nodes, a SIGKILLed
//     sender's node, a room actor stopped on the recipient's node), and
//     "lost" otherwise. Lost must be zero.

type kind uint8

const (
	kindRoom kind = iota
	kindChat
	kindDirect
)

func (k kind) String() string { return [...]string{"room", "chat", "direct"}[k] }

type outcome uint8

const (
	pending outcome = iota
	acked
	refused
)

// conn is one connection of a regular client: a client reconnects as a new
// conn. Fields after opened are guarded by the ledger's mutex.
type conn struct {
	id     string // client and incarnation: c07#3
	client int
	user   string
	node   int    // node index
	nodeID string // node incarnation
	opened time.Time

	joined    map[string]time.Time // room -> when the join ack arrived
	dead      time.Time            // zero while live
	closeCode uint16
}

type message struct {
	id     string
	seq    int
	kind   kind
	room   string
	target int // client index, for direct messages
	from   *conn
	sent   time.Time

	outcome   outcome
	code      string
	got       map[*conn]int
	reordered int // copies that arrived after a later message of the same sender and path

	pos         position // a room message's place in the room's stream, from its first copy
	hasPos      bool
	posMismatch int // copies that named another place (members must agree)
}

// scope says which (sender, recipient) pairs a fault window excuses.
type scope uint8

const (
	scopeCrossNode  scope = iota // sender and recipient on different nodes
	scopeFromNode                // sender on node, recipient elsewhere
	scopeIntoNode                // recipient on node, sender elsewhere
	scopeRoomOnNode              // recipient on node, in room
)

// window is a stretch of time during which a fault makes delivery on some
// paths at-most-once.
type window struct {
	fault    string
	from, to time.Time // to is zero while the fault is not over
	scope    scope
	node     int
	room     string
}

func (w *window) covers(m *message, r *conn) bool {
	switch w.scope {
	case scopeCrossNode:
		return m.from.node != r.node
	case scopeFromNode:
		return m.from.node == w.node && r.node != w.node
	case scopeIntoNode:
		return r.node == w.node && m.from.node != w.node
	case scopeRoomOnNode:
		return r.node == w.node && m.kind == kindRoom && m.room == w.room
	}
	return false
}

// ledger is shared by every client's read goroutine, the traffic
// goroutines and the controller; mu guards everything in it.
type ledger struct {
	joinGrace time.Duration // a new member is owed messages sent this long after its join ack
	liveGrace time.Duration // a member must outlive a send by this much to be owed it
	preSlack  time.Duration // a fault window also covers sends this long before it opened

	mu       sync.Mutex
	msgs     map[string]*message
	order    []*message
	conns    []*conn
	windows  []*window
	lastSeq  map[string]int // recipient|sender|kind|room -> last seq seen
	late     int            // copies or replies for messages already evaluated
	closedBy map[uint16]int // close codes seen by clients

	// With history on (recovery), room messages are judged per client
	// over its reconnections; see streams.go.
	recovery    bool
	historySize int
	streams     map[streamKey]*stream
	st          tally // stream figures since the last evaluation
}

func newLedger(joinGrace, liveGrace, preSlack time.Duration) *ledger {
	return &ledger{
		joinGrace: joinGrace, liveGrace: liveGrace, preSlack: preSlack,
		msgs: map[string]*message{}, lastSeq: map[string]int{}, closedBy: map[uint16]int{},
		streams: map[streamKey]*stream{},
	}
}

// enableRecovery judges room messages per client across reconnections
// with since; historySize is the nodes' --history-size.
func (l *ledger) enableRecovery(historySize int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recovery, l.historySize = true, historySize
}

func (l *ledger) addConn(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.joined = map[string]time.Time{}
	l.conns = append(l.conns, c)
}

func (l *ledger) joined(c *conn, room string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := c.joined[room]; !ok {
		c.joined[room] = at
	}
}

// markDead records that c stopped being live at (the earliest call wins).
func (l *ledger) markDead(c *conn, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.dead.IsZero() || at.Before(c.dead) {
		c.dead = at
	}
}

func (l *ledger) closed(c *conn, at time.Time, code uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.dead.IsZero() || at.Before(c.dead) {
		c.dead = at
	}
	c.closeCode = code
	l.closedBy[code]++
}

func (l *ledger) closeCode(c *conn) uint16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return c.closeCode
}

func (l *ledger) isDead(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !c.dead.IsZero()
}

// sent registers m before its frame is written, so that a fast reply
// always finds it.
func (l *ledger) sent(m *message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m.got = map[*conn]int{}
	l.msgs[m.id] = m
	l.order = append(l.order, m)
}

// unsent forgets m after its frame could not be written.
func (l *ledger) unsent(m *message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.msgs, m.id)
	m.outcome = refused
	m.code = "!write-failed"
}

func (l *ledger) reply(id string, ok bool, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.msgs[id]
	if m == nil {
		l.late++
		return
	}
	if m.outcome != pending {
		return
	}
	if ok {
		m.outcome = acked
	} else {
		m.outcome, m.code = refused, code
	}
}

func (l *ledger) delivered(id string, r *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveredLocked(id, r, position{})
}

// deliveredLocked records a copy of id on r, at p in its room's stream
// (zero for other kinds, or history off).
func (l *ledger) deliveredLocked(id string, r *conn, p position) {
	m := l.msgs[id]
	if m == nil {
		l.late++
		return
	}
	if p.epoch != "" {
		switch {
		case !m.hasPos:
			m.pos, m.hasPos = p, true
		case m.pos != p:
			m.posMismatch++
		}
	}
	m.got[r]++
	key := r.id + "|" + m.from.id + "|" + m.kind.String() + "|" + m.room
	if last, ok := l.lastSeq[key]; ok && m.seq < last {
		m.reordered++
	} else {
		l.lastSeq[key] = m.seq
	}
}

// openWindow starts a fault window; closeWindow ends it.
func (l *ledger) openWindow(w *window) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.windows = append(l.windows, w)
}

func (l *ledger) closeWindow(w *window, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w.to = at
}

// closes returns and resets the close codes clients saw since the last call.
func (l *ledger) closes() map[uint16]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.closedBy
	l.closedBy = map[uint16]int{}
	return c
}

// pendingFromLive counts messages whose sender is live and has no reply yet.
func (l *ledger) pendingFromLive() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.order {
		if m.outcome == pending && m.from.dead.IsZero() {
			n++
		}
	}
	return n
}

// copies is the number of copies received so far, to see deliveries settle.
func (l *ledger) copies() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.order {
		for _, k := range m.got {
			n += k
		}
	}
	return n
}

// evaluate decides every message sent so far and forgets it.
func (l *ledger) evaluate() tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.st
	l.st = tally{}
	t.Late = l.late
	l.late = 0
	for _, m := range l.order {
		l.evaluateOne(&t, m)
		delete(l.msgs, m.id)
	}
	l.order = nil
	// Forget connections and windows that no later message can involve.
	now := time.Now()
	keep := l.conns[:0]
	for _, c := range l.conns {
		if c.dead.IsZero() || now.Sub(c.dead) < time.Minute {
			keep = append(keep, c)
		}
	}
	clear(l.conns[len(keep):])
	l.conns = keep
	wins := l.windows[:0]
	for _, w := range l.windows {
		if w.to.IsZero() || now.Sub(w.to) < time.Minute {
			wins = append(wins, w)
		}
	}
	clear(l.windows[len(wins):])
	l.windows = wins
	for _, s := range l.streams {
		s.prune(now.Add(-time.Minute))
	}
	return t
}

func (l *ledger) evaluateOne(t *tally, m *message) {
	if m.code == "!write-failed" {
		return
	}
	t.Sent++
	t.Reordered += m.reordered
	t.OffsetMismatch += m.posMismatch
	switch m.outcome {
	case refused:
		t.Refused++
		t.RefusedBy = addCounts(t.RefusedBy, map[string]int{m.code: 1})
		for _, n := range m.got {
			t.RefusedDelivered += n
		}
		return
	case pending:
		if m.from.dead.IsZero() {
			t.Unanswered++
			t.Examples = append(t.Examples, fmt.Sprintf("unanswered %s %s from %s on node %d", m.kind, m.id, m.from.id, m.from.node))
		} else {
			t.Unconfirmed++
		}
		return
	}
	t.Acked++
	if m.kind == kindRoom && l.recovery {
		l.evaluateRoomPerClient(t, m)
		return
	}
	for _, r := range l.conns {
		if !l.isRecipient(m, r) {
			continue
		}
		n := m.got[r]
		if !l.owed(m, r) {
			if n > 0 {
				t.Extra++
			}
			continue
		}
		t.Expected++
		switch {
		case n > 0:
			t.Delivered++
			t.Dups += n - 1
		default:
			if w := l.excuse(m, r); w != nil {
				t.Excused++
				t.ExcusedBy = addCounts(t.ExcusedBy, map[string]int{w.fault: 1})
			} else {
				t.Lost++
				if len(t.Examples) < 10 {
					t.Examples = append(t.Examples, fmt.Sprintf("lost %s %s%s sent %s by %s (node %d) to %s (node %d, opened %s, dead %s)",
						m.kind, m.id, roomSuffix(m), m.sent.Format("15:04:05.000"), m.from.id, m.from.node,
						r.id, r.node, r.opened.Format("15:04:05.000"), fmtTime(r.dead)))
				}
			}
		}
	}
}

func roomSuffix(m *message) string {
	if m.kind == kindRoom {
		return " in " + m.room
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}

// isRecipient: would r receive m if everything worked?
func (l *ledger) isRecipient(m *message, r *conn) bool {
	switch m.kind {
	case kindRoom:
		_, ok := r.joined[m.room]
		return ok
	case kindChat:
		return r.client != m.from.client
	case kindDirect:
		return r.client == m.target
	}
	return false
}

// owed: was r a live recipient for the whole of m's flight?
func (l *ledger) owed(m *message, r *conn) bool {
	start := r.opened
	if m.kind == kindRoom {
		start = r.joined[m.room]
	}
	if start.Add(l.joinGrace).After(m.sent) {
		return false
	}
	return r.dead.IsZero() || !r.dead.Before(m.sent.Add(l.liveGrace))
}

func (l *ledger) excuse(m *message, r *conn) *window {
	for _, w := range l.windows {
		if m.sent.Before(w.from.Add(-l.preSlack)) {
			continue
		}
		if !w.to.IsZero() && m.sent.After(w.to.Add(l.joinGrace)) {
			continue
		}
		if w.covers(m, r) {
			return w
		}
	}
	return nil
}
