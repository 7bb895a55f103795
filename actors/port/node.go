package port

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Node is what the transport needs from a node's core: sessions for the
// connections it accepts, the server-side publish API, and the state and
// counters its operational endpoints report. *actors.Node implements it;
// the transport never sees the actor runtime behind it.
//
// Every method may be called from any goroutine (HTTP handlers, read
// loops, the inbox's drainers) and none blocks, except the publishes (until
// the broker and the local fan-out answer, bounded by ctx) and Drain.
type Node interface {
	Sessions
	Publisher

	// ID is the node's id, as welcome events and broker envelopes name it.
	ID() string
	// Metrics are the node's counters, for reading only.
	Metrics() *Metrics
	// BrokerState reports the broker's health.
	BrokerState() BrokerState
	// Broker is the node's broker, for the optional interfaces a transport
	// looks for (a prometheus.Collector is exported on /metrics).
	Broker() any
	// CommandRate is the budget of client commands per connection, in
	// commands per second and a burst (rate <= 0: unlimited). The
	// transport gives each connection's ping frames the same budget.
	CommandRate() (perSecond float64, burst int)
	// Draining reports whether Drain has begun.
	Draining() bool
	// Drain closes every session with 1001 and waits until they are gone
	// or ctx ends. The caller refuses new connections from the start.
	Drain(ctx context.Context) error
}

// Sessions is the part of a Node that runs one session per connection.
type Sessions interface {
	// Connect starts the session of an accepted connection, whose
	// outbound side is conn (a HeardConn is dropped when its peer falls
	// silent). The handle names the session in Deliver.
	Connect(conn Conn, opts SessionOptions) SessionHandle
	// Deliver hands the session h a message: what its connection sent (a
	// wire.Command, as wire.DecodeCommand returns it) or the connection's
	// end (*SocketClosed). It never blocks; a session that has ended, and
	// the zero handle, drop it.
	Deliver(h SessionHandle, msg any)
}

// Publisher is the server-side publish API: payload is an event object
// with a string "event" field, delivered as it is to every recipient on
// every node. Errors: ErrInvalidRoom, ErrInvalidUser, ErrInvalidPayload, or
// ctx's error.
type Publisher interface {
	// PublishRoom delivers payload to every member of room.
	PublishRoom(ctx context.Context, room string, payload []byte) (PublishResult, error)
	// PublishUser delivers payload to every connection of user.
	PublishUser(ctx context.Context, user string, payload []byte) (PublishResult, error)
	// Broadcast delivers payload to every connection.
	Broadcast(ctx context.Context, payload []byte) (PublishResult, error)
	// Presence reports who is in room across the cluster.
	Presence(ctx context.Context, room string) (wire.Presence, error)
}

// SessionOptions describe one accepted connection.
type SessionOptions struct {
	// User is the client id (the token's sub with auth on).
	User string
	// Expires, when not zero, closes the session with 4001 at that time.
	Expires time.Time
	// RoomAllowed, when not nil, decides which rooms the user may join and
	// send to; others get forbidden.
	RoomAllowed func(room string) bool
	// Remote is the peer address, for logs.
	Remote string
	// NoConnectionEvents: the client opted out of user_connected and
	// user_disconnected (?connection_events=off, docs/protocol.md section
	// 8); room events and everything else still reach it.
	NoConnectionEvents bool
}

// PublishResult reports what a server-side publish reached.
type PublishResult struct {
	// Local is the number of local connections the event was handed to.
	Local int `json:"local_recipients"`
	// Broker is true when the broker accepted the publish for other nodes.
	Broker bool `json:"broker_accepted"`
	// Offset and Epoch are a room publication's place in the room's
	// stream, with history on (docs/protocol.md, section 6); zero while
	// the broker holds it unsent (it is numbered when it is sent).
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

// Publish errors. They keep the actors package's prefix: the actors
// package defines them (as aliases of these) and the core returns them.
var (
	ErrInvalidRoom    = errors.New("actors: invalid room name")
	ErrInvalidUser    = errors.New("actors: invalid user")
	ErrInvalidPayload = errors.New("actors: payload must be a JSON object with a string \"event\" field")
)
