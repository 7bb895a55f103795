package actors

import (
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// broker callback -> session: the answer to a history query.
type historyRead struct {
	id   json.RawMessage
	room string
	res  StreamRead
	err  error
}

func (*historyRead) IgnoreDeadLetterLogging() {}

// appendToStream hands a room publication to the broker, which numbers it
// in the room's stream; the sender's ack means accepted, as for publish.
func (s *session) appendToStream(ctx actor.Context, channel string, env *wire.Envelope, id json.RawMessage) {
	if err := s.node.cfg.Broker.Append(channel, env, nil); err != nil {
		s.node.metrics.Unavailable.Add(1)
		s.fail(ctx, wire.CodeUnavailable, "message broker unavailable; try again", id)
		return
	}
	s.node.metrics.BrokerOut.Add(1)
	s.ack(ctx, id)
}

// history answers a history query from the room's stream: the room need
// not be joined, but the client must be allowed to join it.
func (s *session) history(ctx actor.Context, m *wire.HistoryCmd) {
	size := s.node.history.Size
	switch {
	case size == 0:
		s.fail(ctx, wire.CodeHistoryDisabled, "room history is off on this node", m.ID)
		return
	case !s.allowed(m.Room):
		s.fail(ctx, wire.CodeForbidden, "you may not read this room", m.ID)
		return
	case m.Limit > size:
		s.fail(ctx, wire.CodeInvalidMessage, "field limit must be an integer from 1 to the node's history size", m.ID)
		return
	}
	limit := m.Limit
	if limit == 0 {
		limit = size
	}
	if !s.queryOut(ctx, m.ID) {
		return
	}
	self, root, id, room := s.self, s.node.root, m.ID, m.Room
	q := StreamQuery{Limit: limit, MaxBytes: s.replyBudget(), Client: true}
	s.node.cfg.Broker.Read(RoomChannel(s.node.cfg.ChannelPrefix, room), q, func(res StreamRead, err error) {
		root.Send(self, &historyRead{id: id, room: room, res: res, err: err})
	})
}

// MaxQueriesOut bounds the history and presence queries of one connection
// waiting for the broker's answer. Each costs a read of up to a reply's
// budget (MaxReplyBytes), and the broker serves a bounded number of
// clients' reads at once: a client that sends more before the answers
// come is refused rate_limited, so that one connection's flood can
// neither hold the node's memory nor take every other client's turn.
const MaxQueriesOut = 4

// queryOut counts a query sent to the broker, or refuses it (false) when
// MaxQueriesOut are out already; queryBack counts its answer.
func (s *session) queryOut(ctx actor.Context, id json.RawMessage) bool {
	if s.queries >= MaxQueriesOut {
		s.node.metrics.RateLimited.Add(1)
		s.fail(ctx, wire.CodeRateLimited, "too many queries waiting for their answers; wait for them", id)
		return false
	}
	s.queries++
	return true
}

func (s *session) queryBack() {
	if s.queries > 0 {
		s.queries--
	}
}

// MaxReplyBytes bounds what one answer from the room's stream sends a
// client at once (a history answer, the publications a join recovers):
// 1 MiB, or half the connection's outbound budget if that is less, so
// that the answer never makes its client a slow consumer. A history answer
// holds the newest publications that fit; a recovery that does not fit
// answers recovered:false, and the client reads history instead.
const MaxReplyBytes = 1 << 20

// replyBudget is MaxReplyBytes for this session's connection.
func (s *session) replyBudget() int {
	if b, ok := s.conn.(BudgetedConn); ok && b.PendingBudget()/2 < MaxReplyBytes {
		return b.PendingBudget() / 2
	}
	return MaxReplyBytes
}

func (s *session) onHistory(ctx actor.Context, m *historyRead) {
	s.queryBack()
	if s.closed {
		return
	}
	if m.err != nil {
		s.node.metrics.Unavailable.Add(1)
		s.fail(ctx, wire.CodeUnavailable, "message broker unavailable; try again", m.id)
		return
	}
	// The newest that fit in the reply budget, oldest first.
	budget := s.replyBudget() - 256 - len(m.room) - len(m.res.Pos.Epoch)
	first := len(m.res.Pubs)
	for first > 0 && len(m.res.Pubs[first-1].Event.JSON)+1 <= budget {
		first--
		budget -= len(m.res.Pubs[first].Event.JSON) + 1
	}
	if first > 0 {
		s.node.metrics.HistoryTrimmed.Add(1)
	}
	pubs := make([][]byte, 0, len(m.res.Pubs)-first)
	for _, in := range m.res.Pubs[first:] {
		pubs = append(pubs, in.Event.JSON)
	}
	s.send(ctx, wire.HistoryEvent(m.id, m.room, m.res.Pos, pubs))
}
