package actors

import (
	"context"
	"encoding/json"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Room presence across the cluster (docs/protocol.md, section 7). Each
// room actor reports its local members to the broker as they come and go
// (Broker.RoomMember): that is the node's share. A query reads every
// live node's share from the broker, in one step.

// broker callback -> session: the answer to a presence query.
type presenceRead struct {
	id   json.RawMessage
	room string
	p    wire.Presence
	err  error
}

func (*presenceRead) IgnoreDeadLetterLogging() {}

// presence answers a presence query: the room need not be joined, but the
// client must be allowed to join it.
func (s *session) presence(ctx actor.Context, m *wire.PresenceCmd) {
	if !s.allowed(m.Room) {
		s.fail(ctx, wire.CodeForbidden, "you may not see this room", m.ID)
		return
	}
	if !s.queryOut(ctx, m.ID) {
		return
	}
	self, root, id, room := s.self, s.node.root, m.ID, m.Room
	s.node.cfg.Broker.Presence(RoomChannel(s.node.cfg.ChannelPrefix, room), func(p wire.Presence, err error) {
		root.Send(self, &presenceRead{id: id, room: room, p: p, err: err})
	})
}

// Presence reports who is in room across the cluster: what GET
// /api/presence answers.
func (n *Node) Presence(ctx context.Context, room string) (wire.Presence, error) {
	if !wire.ValidRoomName(room) {
		return wire.Presence{}, ErrInvalidRoom
	}
	type answer struct {
		p   wire.Presence
		err error
	}
	done := make(chan answer, 1)
	n.cfg.Broker.Presence(RoomChannel(n.cfg.ChannelPrefix, room), func(p wire.Presence, err error) { done <- answer{p, err} })
	select {
	case a := <-done:
		return a.p, a.err
	case <-ctx.Done():
		return wire.Presence{}, ctx.Err()
	}
}
