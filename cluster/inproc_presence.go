package cluster

import (
	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Room presence in one process (docs/protocol.md, section 7): the fabric's
// actor keeps every node's share of each room, as the Redis broker keeps
// them in Redis, and a query sums them.

// RoomMember implements port.Broker.
func (b *InProc) RoomMember(channel, user string, delta int) {
	b.fabric.send(&fabMember{channel: channel, user: user, node: b.host.NodeID, delta: delta})
}

// Presence implements port.Broker.
func (b *InProc) Presence(channel string, done func(wire.Presence, error)) {
	if b.fabric.down.Load() {
		done(wire.Presence{}, port.ErrUnavailable)
		return
	}
	b.fabric.send(&fabPresenceQuery{channel: channel, done: done})
}

// fabMember is a change of a node's share of a room's presence.
type fabMember struct {
	channel, user, node string
	delta               int
}

// fabPresenceQuery asks who is in a room.
type fabPresenceQuery struct {
	channel string
	done    func(wire.Presence, error)
}

// member applies a change of a node's share of a room's presence.
func (a *fabricActor) member(m *fabMember) {
	if a.rooms == nil {
		a.rooms = map[string]map[string]map[string]int{}
	}
	nodes := a.rooms[m.channel]
	if nodes == nil {
		nodes = map[string]map[string]int{}
		a.rooms[m.channel] = nodes
	}
	users := nodes[m.node]
	if users == nil {
		users = map[string]int{}
		nodes[m.node] = users
	}
	users[m.user] += m.delta
	if users[m.user] <= 0 {
		delete(users, m.user)
	}
	if len(users) == 0 {
		delete(nodes, m.node)
	}
	if len(nodes) == 0 {
		delete(a.rooms, m.channel)
	}
}

// forgetNode drops a node's shares of every room's presence.
func (a *fabricActor) forgetNode(node string) {
	for ch, nodes := range a.rooms {
		delete(nodes, node)
		if len(nodes) == 0 {
			delete(a.rooms, ch)
		}
	}
}
