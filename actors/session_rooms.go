package actors

import (
	"encoding/json"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// stashed is what waits behind a join in flight: a client command (with
// when it arrived, for a direct message), or the acknowledgement of the
// join itself (ack).
type stashed struct {
	cmd     wire.Command
	arrived time.Time
	ack     *joinAck
}

// joinAck is a stashed marker: acknowledge a join once it has taken effect,
// or report unavailable if the room refused it.
type joinAck struct {
	id      json.RawMessage
	room    string
	refused bool
	// Where the joiner starts in the room's stream and, for a join with
	// since, whether it recovered (roomJoined).
	pos       wire.Position
	recovered *bool
	answered  bool // the room's answer came (roomJoined or roomRefused)
}

// answerJoin sends a stashed join's ack, or its refusal.
func (s *session) answerJoin(ctx actor.Context, ja *joinAck) {
	if s.closed {
		return
	}
	if ja.refused {
		s.fail(ctx, wire.CodeUnavailable, "message broker did not confirm the room in time; try again", ja.id)
		return
	}
	if ja.pos.Known() && len(ja.id) > 0 {
		s.send(ctx, wire.JoinAckEvent(ja.id, ja.room, ja.pos, ja.recovered))
		return
	}
	s.ack(ctx, ja.id)
}

// publish hands env to the broker; on refusal the sender gets unavailable.
func (s *session) publish(ctx actor.Context, channel string, env *wire.Envelope, id json.RawMessage) bool {
	if err := s.node.cfg.Broker.Publish(channel, env); err != nil {
		s.node.metrics.Unavailable.Add(1)
		s.fail(ctx, wire.CodeUnavailable, "message broker unavailable; try again", id)
		return false
	}
	s.node.metrics.BrokerOut.Add(1)
	return true
}

func (s *session) allowed(room string) bool {
	return s.opts.RoomAllowed == nil || s.opts.RoomAllowed(room)
}

// joinSent and joinAnswered count the joins out (session.joinsOut).
func (s *session) joinSent(room string) {
	if s.joinsOut == nil {
		s.joinsOut = make(map[string]int)
	}
	s.joinsOut[room]++
}

func (s *session) joinAnswered(room string) {
	if s.joinsOut[room] > 1 {
		s.joinsOut[room]--
		return
	}
	delete(s.joinsOut, room)
	if len(s.joinsOut) == 0 {
		s.joinsOut = nil
	}
}

func (s *session) onJoined(ctx actor.Context, m *roomJoined) {
	s.joinAnswered(m.room)
	pid, in := s.rooms[m.room]
	if !in || pid != nil {
		// Left meanwhile, or a duplicate reply after a retry: undo the join.
		if !in || !pid.Equal(m.pid) {
			ctx.Send(m.pid, &roomLeave{session: s.self, user: s.opts.User})
		}
		return
	}
	s.rooms[m.room] = m.pid
	for _, e := range s.stash {
		if e.ack != nil && e.ack.room == m.room && !e.ack.answered {
			e.ack.pos, e.ack.recovered, e.ack.answered = m.pos, m.recovered, true
			break
		}
	}
	if m.room == s.joinCmd {
		s.joinCmd = ""
	}
	if s.joining > 0 {
		s.joining--
	}
	s.drainStash(ctx)
}

// onRefused: the room's channel was not confirmed by the broker in time.
// The client's join_room fails with unavailable: no membership, nothing
// announced, and the client may try again. A silent re-join (the session
// is in the room already) is tried again by its joinTimeout.
func (s *session) onRefused(ctx actor.Context, m *roomRefused) {
	s.joinAnswered(m.room)
	if pid, in := s.rooms[m.room]; !in || pid != nil || m.room != s.joinCmd {
		return
	}
	delete(s.rooms, m.room)
	s.joinCmd = ""
	s.joining--
	for _, e := range s.stash {
		if e.ack != nil && e.ack.room == m.room && !e.ack.answered {
			e.ack.refused, e.ack.answered = true, true
			break
		}
	}
	s.drainStash(ctx)
}

// drainStash handles the stashed commands once no join is in flight, until
// one of them starts a join. The stash is a queue taken from the front in
// place, and nothing is copied, so a client that pipelines n joins costs
// O(n), not the n*n/2 copies that moving the rest at every join cost (550
// MB of garbage for 100 clients pipelining 1,000 joins each). A join
// handled from the stash puts its ack in the slot its command held: ahead
// of what the client sent after it, which waits for it (a join, leave,
// join of one room pipelined had the first join's ack sent after the
// leave's, with the second join's position, and the second join's ack
// with none).
func (s *session) drainStash(ctx actor.Context) {
	for s.joining == 0 && len(s.stash) > 0 {
		e := s.stash[0]
		s.stash[0] = stashed{} // handled: drop the command it held
		if e.ack != nil {
			s.stash = s.stash[1:]
			s.answerJoin(ctx, e.ack)
			continue
		}
		s.inStash = true
		s.handle(ctx, e.cmd, e.arrived)
		s.inStash = false
		if len(s.stash) > 0 && s.stash[0].ack == nil {
			s.stash = s.stash[1:]
		}
	}
	if len(s.stash) == 0 {
		s.stash = nil // let the array go
	}
}

// onRoomGone: a room this session is in stopped with its members (killed,
// or stopped after repeated panics). The session is the source of truth,
// so it re-joins and a fresh room actor takes over, without user_joined
// noise.
func (s *session) onRoomGone(ctx actor.Context, m *roomGone) {
	if pid := s.rooms[m.room]; pid == nil || !pid.Equal(m.pid) {
		return // left meanwhile, or already re-joining
	}
	s.rooms[m.room] = nil
	s.joining++
	s.joinSent(m.room)
	ctx.Send(s.node.hub, &joinRoom{room: m.room, session: s.self, user: s.opts.User, silent: true, since: m.since, budget: s.replyBudget()})
	s.node.timers.SendOnce(s.node.cfg.JoinRetry, s.self, &joinTimeout{room: m.room})
}

// leaveAll leaves every room of a stopping session, whatever ended it:
// rooms do not watch their members (roomLeave). A room with a join out
// (not answered yet: a first join, a retry, a re-join; also one the client
// left meanwhile) is left through the hub, which handles a session's
// messages in order (only joins go ahead, and this comes after them all):
// it forwards the leave to the room it forwarded the last join to, which
// cannot have been retired while that join made it a member.
//
// A session in many rooms hands its leaves to the worker pool as teardown
// (leaveManyAt and up): a mass exit of 100 sessions in 1,000 rooms each
// held the sessions' workers for 100,000 sends, and a join's answer to a
// live session waited behind them.
func (s *session) leaveAll(ctx actor.Context) {
	if len(s.rooms)+len(s.joinsOut) == 0 {
		return
	}
	rooms, joinsOut := s.rooms, s.joinsOut
	leave := &roomLeave{session: s.self, user: s.opts.User}
	byHub := &leaveRoom{session: s.self, user: s.opts.User}
	root, hub := s.node.root, s.node.hub
	send := func() {
		for name, pid := range rooms {
			switch {
			case pid != nil:
				root.Send(pid, leave)
			case joinsOut[name] == 0:
				// A re-join refused, waiting for its retry: no
				// member, but leaving costs nothing.
				m := *byHub
				m.room = name
				root.Send(hub, &m)
			}
		}
		for name := range joinsOut {
			m := *byHub
			m.room = name
			root.Send(hub, &m)
		}
	}
	if len(rooms)+len(joinsOut) < leaveManyAt {
		send()
		return
	}
	s.node.pool.schedule(activation{fn: send}, true)
}

// leaveManyAt is the number of rooms from which a stopping session's
// leaves go through the pool (leaveAll).
const leaveManyAt = 16

// join starts a join_room: the room answers (roomJoined, roomRefused), and
// the ack waits in the stash until it does.
func (s *session) join(ctx actor.Context, m *wire.JoinRoomCmd) {
	if !s.allowed(m.Room) {
		s.fail(ctx, wire.CodeForbidden, "you may not join this room", m.ID)
		return
	}
	if pid, in := s.rooms[m.Room]; in {
		if pid != nil && len(m.ID) > 0 && s.node.history.Size > 0 {
			// A member already: it missed nothing on this connection;
			// the room says where it is.
			ctx.Send(pid, &roomPositionQuery{id: m.ID, session: s.self, since: m.Since != nil})
			return
		}
		s.ack(ctx, m.ID)
		return
	}
	if len(s.rooms) >= s.node.cfg.MaxRoomsPerSession {
		s.fail(ctx, wire.CodeTooManyRooms, "room limit reached", m.ID)
		return
	}
	if s.rooms == nil {
		s.rooms = make(map[string]*actor.PID)
	}
	s.rooms[m.Room] = nil
	s.joining++
	s.joinCmd = m.Room
	s.joinSent(m.Room)
	ctx.Send(s.node.hub, &joinRoom{room: m.Room, session: s.self, user: s.opts.User, since: m.Since, budget: s.replyBudget()})
	s.node.timers.SendOnce(s.node.cfg.JoinRetry, s.self, &joinTimeout{room: m.Room})
	// The ack (or the refusal) is sent when the room answers; the id
	// rides in the stash.
	ack := stashed{ack: &joinAck{id: m.ID, room: m.Room}}
	if s.inStash {
		s.stash[0] = ack // the join's own slot (drainStash)
	} else {
		s.stash = append(s.stash, ack)
	}
}
