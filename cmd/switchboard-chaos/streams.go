package main

import (
	"fmt"
	"time"
)

// Room streams and recovery (docs/protocol.md, section 6). With history on,
// a regular client is a member of its rooms across its connections: when
// a connection ends (the socket dies, a drain closes it with 1001, its node
// is SIGKILLed), the client reconnects to any node and rejoins each room
// with since = the last offset and epoch it received there. The ledger
// then judges room messages per client, not per connection:
//
//   - A client is owed every acked room message sent while it was a
//     member: from its first join (plus joinGrace) until it stops for good,
//     across every reconnection with since. Only a join without since (the
//     client had no position) starts a new membership.
//   - Delivered means one copy on any of its connections; more copies are
//     duplicates.
//   - Each client's copies of a room form its stream: within an epoch every
//     offset is the previous one plus one. An offset that goes back is a
//     repeat (reordered or duplicated), one that skips is a silent gap; both
//     are violations. A new epoch seen live must start at offset 1.
//   - A join with since answered recovered:false is counted and its hole
//     (the offsets the client is told it missed) excuses those messages. It
//     is explained when the epoch changed (the stream lost its history) or
//     more than the history size was published meanwhile; any other
//     recovered:false is a violation.
//
// Chats that arrive on a connection before its join ack for that room (the
// recovered ones come first) are held by the session and judged when the
// ack arrives; if the connection ends before it, they are dropped and the
// next connection recovers from the same since, as a client that keeps
// only a completed recovery does.

// position is a place in a room's stream.
type position struct {
	offset uint64
	epoch  string
}

func (p position) String() string { return fmt.Sprintf("%d/%s", p.offset, p.epoch) }

type streamKey struct {
	client int
	room   string
}

// stream is what one client received of one room's stream, over all its
// connections. Guarded by the ledger's mutex.
type stream struct {
	pos    position
	known  bool
	feeder *conn // the connection last acked into the room: only its chats extend the stream
	spans  []span
	holes  []hole
}

// span is one membership of a client in a room: from its join ack until it
// stopped (zero while it lasts).
type span struct{ from, to time.Time }

// hole is what a recovered:false told the client it missed: the offsets in
// (after, upTo] of epoch (upTo 0: every later one of that epoch). Messages
// nobody received have no known offset; for them, the hole covers sends
// between from and to.
type hole struct {
	epoch       string
	after, upTo uint64
	from, to    time.Time
}

// heldChat is a chat received before its room's join ack on that connection.
type heldChat struct {
	id  string
	pos position
}

// recoveryFalse reasons.
const (
	lostEpoch   = "epoch"       // the stream lost its history (a new epoch)
	lostTrimmed = "trimmed"     // more than the history size was published meanwhile
	lostOther   = "unexplained" // neither: a violation
)

func (l *ledger) streamOf(client int, room string) *stream {
	k := streamKey{client, room}
	s := l.streams[k]
	if s == nil {
		s = &stream{}
		l.streams[k] = s
	}
	return s
}

// since is where client should resume room from, if it knows.
func (l *ledger) since(client int, room string) (position, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.streams[streamKey{client, room}]; s != nil && s.known && l.recovery {
		return s.pos, true
	}
	return position{}, false
}

// roomJoined records cn's join ack for room: since is what the join asked
// for (nil: a plain join), at and hasAt the position the ack reported,
// recovered its flag (nil when absent), held the chats that came before it.
func (l *ledger) roomJoined(cn *conn, room string, since *position, at position, hasAt bool, recovered *bool, ackAt time.Time, held []heldChat) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := cn.joined[room]; !ok {
		cn.joined[room] = ackAt
	}
	if !l.recovery {
		for _, h := range held {
			l.deliveredLocked(h.id, cn, h.pos)
		}
		return
	}
	s := l.streamOf(cn.client, room)
	prev := s.feeder
	s.feeder = cn
	switch {
	case since == nil:
		// A new membership: the previous one (if any) ended with its
		// connection.
		if n := len(s.spans); n > 0 && s.spans[n-1].to.IsZero() {
			end := ackAt
			if prev != nil && !prev.dead.IsZero() {
				end = prev.dead
			}
			s.spans[n-1].to = end
		}
		s.spans = append(s.spans, span{from: ackAt})
		s.pos, s.known = at, hasAt
	case recovered == nil:
		// The client asked to recover and was not told whether it did:
		// it cannot know what it missed. The membership goes on, and
		// whatever did not come is a silent gap.
		l.st.NoRecoveredFlag++
	case *recovered:
		l.st.Recovered++
		l.st.RecoveredChats += len(held)
	default:
		reason := lostOther
		h := hole{epoch: since.epoch, after: since.offset, upTo: at.offset, from: l.lastCopy(s, prev), to: ackAt}
		switch {
		case at.epoch != since.epoch:
			reason, h.upTo = lostEpoch, 0
			// and the new epoch's offsets up to the ack's position
			s.holes = append(s.holes, hole{epoch: at.epoch, upTo: at.offset, from: h.from, to: ackAt})
			l.st.HoleOffsets += int(at.offset)
		case at.offset > since.offset+uint64(l.historySize):
			reason = lostTrimmed
			l.st.HoleOffsets += int(at.offset - since.offset)
		default:
			l.st.HoleOffsets += int(at.offset - min(at.offset, since.offset))
			l.example(&l.st, "recovered:false for %s in %s: since %s, ack %s, history size %d: neither another epoch nor history exceeded",
				cn.id, room, since, at, l.historySize)
		}
		s.holes = append(s.holes, h)
		l.st.RecoveredFalse = addCounts(l.st.RecoveredFalse, map[string]int{reason: 1})
		s.pos, s.known = at, hasAt
	}
	for _, h := range held {
		l.deliveredLocked(h.id, cn, h.pos)
		l.extend(s, cn, room, h.pos)
	}
	if since != nil && (recovered == nil || *recovered) && s.known && hasAt {
		switch {
		case at.epoch != s.pos.epoch:
			l.st.StreamGaps += int(at.offset)
			l.example(&l.st, "%s in %s: joined with since %s, recovered %s, but the ack is in another epoch: %s", cn.id, room, since, recoveredFlag(recovered), at)
			s.pos = at
		case s.pos.offset < at.offset:
			l.st.StreamGaps += int(at.offset - s.pos.offset)
			l.example(&l.st, "%s in %s: joined with since %s, recovered %s, but its copies end at %s and the ack says %s", cn.id, room, since, recoveredFlag(recovered), s.pos, at)
			s.pos = at
		}
	}
}

func recoveredFlag(b *bool) string {
	if b == nil {
		return "absent"
	}
	return fmt.Sprint(*b)
}

// lastCopy is when the client last received a copy in this stream, for the
// time bound of a hole: approximated by when its previous connection died.
func (l *ledger) lastCopy(s *stream, prev *conn) time.Time {
	if prev != nil && !prev.dead.IsZero() {
		return prev.dead.Add(-l.liveGrace)
	}
	if n := len(s.spans); n > 0 {
		return s.spans[n-1].from
	}
	return time.Time{}
}

// roomChat records a chat of room received on cn after its join ack.
func (l *ledger) roomChat(cn *conn, room, id string, p position) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveredLocked(id, cn, p)
	if !l.recovery || p.epoch == "" {
		return
	}
	if s := l.streams[streamKey{cn.client, room}]; s != nil && s.feeder == cn {
		l.extend(s, cn, room, p)
	}
}

// extend checks that p follows the client's stream and moves it on.
func (l *ledger) extend(s *stream, cn *conn, room string, p position) {
	if p.epoch == "" {
		return
	}
	switch {
	case !s.known:
	case p.epoch != s.pos.epoch:
		l.st.EpochChanges++
		if p.offset != 1 {
			l.st.StreamGaps += int(p.offset - 1)
			l.example(&l.st, "%s in %s: a new epoch starts at %s after %s", cn.id, room, p, s.pos)
		}
	case p.offset == s.pos.offset+1:
	case p.offset <= s.pos.offset:
		l.st.StreamRepeats++
		l.example(&l.st, "%s in %s: %s after %s (repeated or reordered)", cn.id, room, p, s.pos)
		return
	default:
		l.st.StreamGaps += int(p.offset - s.pos.offset - 1)
		l.example(&l.st, "%s in %s: %s after %s (silent gap of %d)", cn.id, room, p, s.pos, p.offset-s.pos.offset-1)
	}
	s.pos, s.known = p, true
}

func (l *ledger) example(t *tally, format string, args ...any) {
	if len(t.StreamExamples) < 10 {
		t.StreamExamples = append(t.StreamExamples, fmt.Sprintf(format, args...))
	}
}

// clientGone ends every membership of client: it stopped for good.
func (l *ledger) clientGone(client int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, s := range l.streams {
		if k.client == client {
			if n := len(s.spans); n > 0 && s.spans[n-1].to.IsZero() {
				s.spans[n-1].to = at
			}
		}
	}
}

// owes: was the client a member of the room for the whole of m's flight?
func (s *stream) owes(m *message, joinGrace, liveGrace time.Duration) bool {
	for _, sp := range s.spans {
		if sp.from.Add(joinGrace).After(m.sent) {
			continue
		}
		if sp.to.IsZero() || !sp.to.Before(m.sent.Add(liveGrace)) {
			return true
		}
	}
	return false
}

// excusedByHole: did a recovered:false tell the client it missed m?
func (s *stream) excusedByHole(m *message, joinGrace time.Duration) bool {
	for _, h := range s.holes {
		if m.hasPos {
			if m.pos.epoch == h.epoch && m.pos.offset > h.after && (h.upTo == 0 || m.pos.offset <= h.upTo) {
				return true
			}
			continue
		}
		if !m.sent.Before(h.from) && !m.sent.After(h.to.Add(joinGrace)) {
			return true
		}
	}
	return false
}

// prune forgets memberships and holes that no later message can involve.
func (s *stream) prune(before time.Time) {
	spans := s.spans[:0]
	for i, sp := range s.spans {
		if sp.to.IsZero() || sp.to.After(before) || i == len(s.spans)-1 {
			spans = append(spans, sp)
		}
	}
	s.spans = spans
	holes := s.holes[:0]
	for _, h := range s.holes {
		if h.to.After(before) {
			holes = append(holes, h)
		}
	}
	s.holes = holes
}

// evaluateRoomPerClient decides a room message for every client that is
// a member of its room (history on).
func (l *ledger) evaluateRoomPerClient(t *tally, m *message) {
	got := map[int]int{}
	for cn, n := range m.got {
		got[cn.client] += n
	}
	for k, s := range l.streams {
		if k.room != m.room {
			continue
		}
		n := got[k.client]
		if !s.owes(m, l.joinGrace, l.liveGrace) {
			if n > 0 {
				t.Extra++
			}
			continue
		}
		t.Expected++
		if n > 0 {
			t.Delivered++
			t.Dups += n - 1
			t.RoomDups += n - 1
			continue
		}
		if s.excusedByHole(m, l.joinGrace) {
			t.Excused++
			t.ExcusedBy = addCounts(t.ExcusedBy, map[string]int{"recovered:false": 1})
			continue
		}
		if w := l.excuseClient(m, k.client); w != nil {
			t.Excused++
			t.ExcusedBy = addCounts(t.ExcusedBy, map[string]int{w.fault: 1})
			continue
		}
		t.Lost++
		if len(t.Examples) < 10 {
			pos := "no offset"
			if m.hasPos {
				pos = "offset " + m.pos.String()
			}
			t.Examples = append(t.Examples, fmt.Sprintf("lost room %s in %s (%s) sent %s by %s (node %d) to client %s (membership %s)",
				m.id, m.room, pos, m.sent.Format("15:04:05.000"), m.from.id, m.from.node, l.userOf(k.client), s.describe()))
		}
	}
}

// excuseClient looks for a fault window that covers m's path to the
// client: to the connection it had when m was sent, or to the one it
// recovered on.
func (l *ledger) excuseClient(m *message, client int) *window {
	for _, cn := range l.conns {
		if cn.client != client || (!cn.dead.IsZero() && cn.dead.Before(m.sent.Add(-l.preSlack))) {
			continue
		}
		if w := l.excuse(m, cn); w != nil {
			return w
		}
		if cn.opened.After(m.sent) {
			break // the connection it recovered on
		}
	}
	return nil
}

func (l *ledger) userOf(client int) string {
	for _, cn := range l.conns {
		if cn.client == client {
			return cn.user
		}
	}
	return fmt.Sprint(client)
}

func (s *stream) describe() string {
	out := ""
	for _, sp := range s.spans {
		out += fmt.Sprintf("[%s, %s]", sp.from.Format("15:04:05.000"), fmtTime(sp.to))
	}
	return out + " at " + s.pos.String()
}
