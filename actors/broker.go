package actors

import (
	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// The broker port lives in package port, so that brokers build without
// the actor runtime; these names keep it reachable from package actors.

// ErrUnavailable is returned by Broker.Publish when the broker is down and its
// outbox is full: the message was refused, not queued (port.ErrUnavailable).
var ErrUnavailable = port.ErrUnavailable

// Broker is the node's port to the pub/sub fabric that joins nodes
// (port.Broker).
type Broker = port.Broker

// PresencePublisher is implemented by brokers that take the node's own
// membership events beyond the limit they put on clients' publishes
// (port.PresencePublisher).
type PresencePublisher = port.PresencePublisher

// publishPresence hands a membership event to the broker.
func (n *Node) publishPresence(channel string, env *wire.Envelope) error {
	if p, ok := n.cfg.Broker.(PresencePublisher); ok {
		return p.PublishPresence(channel, env)
	}
	return n.cfg.Broker.Publish(channel, env)
}

// BrokerHost is what the node gives its broker at start (port.BrokerHost).
type BrokerHost = port.BrokerHost

// BrokerState is a snapshot of a broker's health (package port).
type BrokerState = port.BrokerState

// Subscribed tells a Subscribe target that the fabric now carries Channel to
// it (port.Subscribed).
type Subscribed = port.Subscribed

// Inbound is an envelope that arrived from the broker, decoded and framed
// once per node (port.Inbound).
type Inbound = port.Inbound

// NewInbound decodes one envelope read from the broker (port.NewInbound).
func NewInbound(data []byte) (*Inbound, error) { return port.NewInbound(data) }

// InboundOf frames a broker's own envelope for local delivery (port.InboundOf).
func InboundOf(env *wire.Envelope) *Inbound { return port.InboundOf(env) }

// Room history, as the broker sees it (package port).
type (
	HistoryConfig = port.HistoryConfig
	StreamQuery   = port.StreamQuery
	StreamRead    = port.StreamRead
)

// Channel names, as in PROTOCOL.md section 5 (see package port).

// BroadcastChannel is PREFIX:broadcast.
func BroadcastChannel(prefix string) string { return port.BroadcastChannel(prefix) }

// RoomChannel is PREFIX:room:ROOM.
func RoomChannel(prefix, room string) string { return port.RoomChannel(prefix, room) }

// NodeChannel is PREFIX:node:ID.
func NodeChannel(prefix, node string) string { return port.NodeChannel(prefix, node) }
