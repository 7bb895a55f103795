package port

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// ErrUnavailable is returned by Broker.Publish when the broker is down and its
// outbox is full: the message was refused, not queued.
var ErrUnavailable = errors.New("actors: broker unavailable")

// Broker is the node's port to the pub/sub fabric that joins nodes. The
// actors use only this interface; cluster.InProc (one process) and
// redis.Broker (package cluster/redis, many nodes) implement it.
//
// Every method may be called from any actor's goroutine and must not block
// on the network: I/O happens on goroutines the broker owns, and results come
// back as actor messages or through callbacks that only send messages.
type Broker interface {
	// Start is called once by the node before any other method. host gives
	// the broker the node's actor host, to spawn its own actors in and to
	// deliver inbound traffic with.
	Start(host BrokerHost) error

	// Publish hands env to the fabric for channel. nil means accepted: it
	// is sent, or queued in order and sent on reconnect. ErrUnavailable
	// means refused (broker down, outbox full). env is the broker's from
	// the call on: it fills in what the broker numbers (MsgID), encodes it
	// once (env.Encode) and sends the same bytes to every node.
	Publish(channel string, env *wire.Envelope) error

	// Subscribe makes the broker deliver every envelope published on channel
	// to target as *Inbound, until Unsubscribe with the same target, except
	// the node's own (wire.EncodedFrom, Envelope.From): the node delivered
	// those locally when it published them. Several targets may share a
	// channel; the broker holds one subscription for it. Once every later
	// publish on channel is sure to reach target (the fabric confirmed the
	// subscription), the broker sends target a *Subscribed; it may send it
	// again, after a resubscription. Targets compare with Ref.Equal.
	Subscribe(channel string, target Ref)
	Unsubscribe(channel string, target Ref)

	// Append numbers env, a publication to the room of channel, in the
	// room's stream (docs/protocol.md, section 6): the broker gives it the
	// next offset of the stream's epoch (env.Pos), stores it in the
	// stream's history and publishes it to every subscriber of channel,
	// this node included, in offset order. nil means accepted, as for
	// Publish (a publish held while the fabric is down is numbered when it
	// is sent); ErrUnavailable means refused. done, when not nil, is
	// called once on a broker goroutine with the position, or with an
	// error if the broker gave the publish up; it must only send a message.
	// Used only while BrokerHost.History.Size > 0.
	Append(channel string, env *wire.Envelope, done func(wire.Position, error)) error

	// Read reads the stream of channel: its position (a stream with no
	// publication yet gets its epoch here, at offset 0, kept for
	// EmptyStreamTTL; a client's read, q.Client, of a stream that does not
	// exist keeps nothing and answers a fresh epoch at 0) and, per q, the
	// publications it keeps, oldest first, as they were delivered. done is
	// called once on a broker goroutine; it must only send a message. A
	// broker that cannot read within its command timeout calls done with
	// ErrUnavailable.
	Read(channel string, q StreamQuery, done func(StreamRead, error))

	// RoomMember records this node's share of a room's presence
	// (docs/protocol.md, section 7): one more (delta 1) or one fewer
	// (delta -1) connection of user is a member of the room of channel on
	// this node. Like presence, it never fails: a broker that is down
	// applies it when it is back.
	RoomMember(channel, user string, delta int)

	// Presence reads who is in the room of channel across the cluster:
	// every live node's share, summed; a node that died without a word is
	// left out once its liveness expired. done is called once on a broker
	// goroutine; it must only send a message.
	Presence(channel string, done func(wire.Presence, error))

	// SendDirect delivers env (a direct_message envelope, the broker's from
	// the call on, as with Publish) to every other node that holds a
	// connection of user. done reports how many nodes it was
	// sent to (0: nobody else holds the user) or an error; it runs on a
	// broker goroutine and must only send a message. A broker that cannot
	// send the message within BrokerHost.DirectWait (the fabric is down)
	// should call done with ErrUnavailable and drop it: the sender stops
	// waiting soon after, and reports unavailable to its client.
	SendDirect(user string, env *wire.Envelope, done func(nodes int, err error))

	// UserOnline and UserOffline maintain the cluster's presence directory:
	// the hub calls them when a user's first local connection opens and when
	// its last one closes.
	UserOnline(user string)
	UserOffline(user string)

	// State reports the broker's health for /readyz and /stats.
	State() BrokerState

	// Close flushes what it can within ctx and releases every connection.
	Close(ctx context.Context) error
}

// PresencePublisher is implemented by brokers that take the node's own
// membership events (user_joined, user_left, user_connected,
// user_disconnected) beyond the limit they put on clients' publishes. There
// is at most one per join, leave, connect and disconnect, and nobody to
// refuse one to: when many connections leave at once, a broker that refused
// them would lose them for every member on the other nodes. A broker
// without it gets them through Publish.
type PresencePublisher interface {
	PublishPresence(channel string, env *wire.Envelope) error
}

// BrokerHost is what the node gives its broker at start.
type BrokerHost struct {
	// Actors is the node's actor host: the broker's actors live in the
	// node's actor system, and what it delivers (*Inbound, *Subscribed)
	// goes to targets through it.
	Actors ActorHost
	NodeID string
	// Hub receives node-addressed traffic (direct messages routed by presence).
	Hub Ref
	// Prefix is the channel prefix (default "websocket").
	Prefix string
	// DirectWait is how long a direct message may wait in the broker for
	// the fabric (see SendDirect): half the node's JoinRetry.
	DirectWait time.Duration
	// History is how much of each room's stream the broker keeps.
	History HistoryConfig
}

// EmptyStreamTTL bounds how long a stream that a room's position read
// created and nobody published to is kept (at most the history TTL): a
// room joined and left costs the broker that long. Once it expired, the
// next read or publication starts another epoch (a since naming the old
// one may answer recovered:false, never a gap).
const EmptyStreamTTL = time.Minute

// HistoryConfig is the node's room history setting (docs/protocol.md,
// section 6): the broker keeps the newest Size publications of each
// room's stream, and forgets a stream (its epoch with it) TTL after its
// last publication. Size 0: history off (Append and Read are not used).
type HistoryConfig struct {
	Size int
	TTL  time.Duration
}

// StreamQuery says what Read returns besides the position: nothing
// (PositionOnly), the publications after offset After of epoch Epoch, or
// the newest Limit of those. After counts in Epoch: if the stream's epoch
// is another (or Epoch is empty), the publications are read from offset 1.
//
// MaxBytes (0: no bound) bounds what one read costs the broker and the
// node, counted in stored bytes (a publication's envelope, a little larger
// than the event members receive): a Limit query reads the newest until
// they pass MaxBytes (the one that passes it included, so that every
// event that fits is there); any other that would pass it returns no
// publication and reports Truncated (a recovery that does not fit is
// given up whole).
//
// Client marks a read a client asked for (a history query, the recovery
// of a join with since): a broker may refuse it (ErrUnavailable) while
// clients' reads hold their share of the reads in flight, so that the
// rooms' own reads (a position, a catch-up after a gap) never wait behind
// a flood of queries.
type StreamQuery struct {
	After        uint64
	Epoch        string
	Limit        int
	PositionOnly bool
	MaxBytes     int
	Client       bool
}

// StreamRead is what Read found: the stream's position and the kept
// publications the query asked for, oldest first, each as every member
// received it (Inbound.Event). Kept publications start at the oldest
// offset the stream still has: the caller compares Pubs[0] with what it
// asked for to know whether history was trimmed.
// Truncated: what was asked for passed MaxBytes; Pubs is then empty.
type StreamRead struct {
	Pos       wire.Position
	Pubs      []*Inbound
	Truncated bool
}

// Subscribed tells a Subscribe target that the fabric now carries Channel to
// it: what any node publishes on Channel from now on arrives.
type Subscribed struct {
	Channel string
}

// IgnoreDeadLetterLogging: a confirmation racing with a stopping room is normal.
func (*Subscribed) IgnoreDeadLetterLogging() {}

// Inbound is an envelope that arrived from the broker, decoded and framed once
// per node; the same value goes to every local target.
type Inbound struct {
	Envelope *wire.Envelope
	Event    *wire.Event
}

// IgnoreDeadLetterLogging: an inbound racing with a stopping room is normal.
func (*Inbound) IgnoreDeadLetterLogging() {}

// NewInbound decodes one envelope read from the broker. Broker traffic is
// untrusted input: a malformed envelope is an error, never a panic.
func NewInbound(data []byte) (*Inbound, error) {
	env, err := wire.DecodeEnvelope(data)
	if err != nil {
		return nil, err
	}
	return InboundOf(env), nil
}

// InboundOf frames env for local delivery, once: a numbered room
// publication carries its position in the event (wire.PositionedEvent).
func InboundOf(env *wire.Envelope) *Inbound {
	if env.Pos.Offset > 0 {
		return &Inbound{Envelope: env, Event: wire.PositionedEvent(env.Payload, env.Pos).Timed()}
	}
	return &Inbound{Envelope: env, Event: wire.NewEvent(env.Payload).Timed()}
}

// Channel names, as in PROTOCOL.md section 5.

// BroadcastChannel is PREFIX:broadcast.
func BroadcastChannel(prefix string) string { return prefix + ":broadcast" }

// RoomChannel is PREFIX:room:ROOM.
func RoomChannel(prefix, room string) string { return prefix + ":room:" + room }

// NodeChannel is PREFIX:node:ID, where a node receives direct messages routed
// to it by the presence directory.
func NodeChannel(prefix, node string) string { return prefix + ":node:" + node }
