package actors

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Config configures a Node. The zero value of every field is documented and
// filled in by NewNode.
type Config struct {
	// NodeID names this node in welcome events and broker envelopes. Zero: random.
	NodeID string
	// ChannelPrefix prefixes broker channels. Zero: "websocket".
	ChannelPrefix string
	// Broker is the pub/sub fabric. Required: cluster.NewInProc() for one node.
	Broker Broker
	// PingInterval is how often every session is pinged. Zero: 25 s.
	PingInterval time.Duration
	// PongTimeout is how long after a ping a peer that has sent nothing
	// since is kept (see HeardConn): a silent peer is closed between
	// PongTimeout and PingInterval + PongTimeout after its last frame.
	// Zero: 10 s.
	PongTimeout time.Duration
	// MaxRoomsPerSession bounds the rooms one connection may be in. Zero: 100.
	MaxRoomsPerSession int
	// RatePerSecond is the sustained client commands per second per
	// connection. Zero: 100. Negative: unlimited.
	RatePerSecond float64
	// RateBurst is the token bucket's size. Zero: 2 x RatePerSecond.
	RateBurst int
	// RateStrikes is how many rate_limited errors in a row close the
	// connection with 1008. Zero: 100.
	RateStrikes int
	// JoinRetry is how long a session waits for a room's reply before it asks
	// again. It also bounds the answer to every client command: a join the
	// broker has not confirmed within half of it is refused, and a direct
	// message the broker has not answered within JoinRetry of its arrival
	// gets unavailable. Zero: 2 s.
	JoinRetry time.Duration
	// DisableStatsCommand makes the node answer the stats command with
	// unknown_type, as a node without the extension would. Zero: any
	// client may ask the node its socket is on for its counts (what the
	// demo page's node panel shows; docs/protocol.md, section 2).
	DisableStatsCommand bool
	// HistorySize is how many publications of each room's stream the
	// broker keeps, for recovery on join and the history query
	// (docs/protocol.md, section 6). Zero: 100. NoHistory: off (no
	// offsets, no recovery, history queries refused). At most
	// wire.MaxHistoryLimit.
	HistorySize int
	// HistoryTTL is how long a room's stream is kept after its last
	// publication; then it is forgotten and its next publication starts a
	// new epoch. Zero: 10 minutes.
	HistoryTTL time.Duration
	// NoConnectionEvents turns off user_connected and user_disconnected
	// for this node's clients (--connection-events off, docs/protocol.md
	// section 8): each connect then costs O(1) frames, however many
	// connections the node holds. The node still tells the other nodes
	// about its own users. Zero: every client gets them (the tutorial's
	// behaviour), unless it opted out itself.
	NoConnectionEvents bool
	// Logger receives the node's logs. Zero: discard.
	Logger *slog.Logger
}

// NoHistory is the HistorySize that turns room history off.
const NoHistory = -1

// Config errors. A field out of its range is reported as a *FieldError,
// which matches ErrBadLimits under errors.Is.
var (
	ErrNoBroker   = errors.New("actors: config: Broker is required")
	ErrBadPrefix  = errors.New("actors: config: ChannelPrefix must not contain spaces or be longer than 64 bytes")
	ErrBadLimits  = errors.New("actors: config: limits must not be negative")
	ErrNodeClosed = errors.New("actors: node is shut down")
)

// FieldError is one Config field out of its range: which field, the value
// given and what is allowed.
type FieldError struct {
	Field   string
	Value   any
	Allowed string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("actors: config: %s %v is out of range: %s", e.Field, e.Value, e.Allowed)
}

// Is makes errors.Is(err, ErrBadLimits) hold.
func (e *FieldError) Is(target error) bool { return target == ErrBadLimits }

// notNegative returns a *FieldError for a negative field, whose zero value
// means zero.
func notNegative[T int | time.Duration](field string, v T, zero string) error {
	if v >= 0 {
		return nil
	}
	return &FieldError{Field: field, Value: v, Allowed: "0 or more (0: " + zero + ")"}
}

func (c *Config) normalize() error {
	if c.Broker == nil {
		return ErrNoBroker
	}
	if c.NodeID == "" {
		c.NodeID = RandomID(8)
	}
	if c.ChannelPrefix == "" {
		c.ChannelPrefix = "websocket"
	}
	if len(c.ChannelPrefix) > 64 {
		return ErrBadPrefix
	}
	for _, r := range c.ChannelPrefix {
		if r <= ' ' {
			return ErrBadPrefix
		}
	}
	if err := errors.Join(
		notNegative("PingInterval", c.PingInterval, "25s"),
		notNegative("PongTimeout", c.PongTimeout, "10s"),
		notNegative("MaxRoomsPerSession", c.MaxRoomsPerSession, "100"),
		notNegative("RateBurst", c.RateBurst, "twice RatePerSecond"),
		notNegative("RateStrikes", c.RateStrikes, "100"),
		notNegative("JoinRetry", c.JoinRetry, "2s"),
		notNegative("HistoryTTL", c.HistoryTTL, "10m"),
		historySize(c.HistorySize),
	); err != nil {
		return err
	}
	if c.PingInterval == 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = 10 * time.Second
	}
	if c.MaxRoomsPerSession == 0 {
		c.MaxRoomsPerSession = 100
	}
	if c.RatePerSecond == 0 {
		c.RatePerSecond = 100
	}
	if c.RateBurst == 0 && c.RatePerSecond > 0 {
		c.RateBurst = int(2 * c.RatePerSecond)
		if c.RateBurst < 1 {
			c.RateBurst = 1
		}
	}
	if c.RateStrikes == 0 {
		c.RateStrikes = 100
	}
	if c.JoinRetry == 0 {
		c.JoinRetry = 2 * time.Second
	}
	if c.HistorySize == 0 {
		c.HistorySize = 100
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

func historySize(n int) error {
	if n >= NoHistory && n <= wire.MaxHistoryLimit {
		return nil
	}
	return &FieldError{Field: "HistorySize", Value: n, Allowed: fmt.Sprintf("NoHistory (-1), or 0 to %d (0: 100)", wire.MaxHistoryLimit)}
}

// history is the normalized history setting: Size 0 when off.
func (c *Config) history() HistoryConfig {
	return HistoryConfig{Size: max(c.HistorySize, 0), TTL: c.HistoryTTL}
}
