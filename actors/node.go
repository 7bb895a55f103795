package actors

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

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
	// Logger receives the node's logs. Zero: discard.
	Logger *slog.Logger
}

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
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Node is one Switchboard node's actor system: the hub, its rooms and the
// sessions. It knows nothing of HTTP; the transport package connects
// WebSockets to it, and embedding programs may publish through it directly.
type Node struct {
	cfg       Config
	system    *actor.ActorSystem
	root      *actor.RootContext
	hub       *actor.PID
	metrics   *Metrics
	log       *slog.Logger
	timers    *scheduler.TimerScheduler
	stopPings func() // stops the heartbeat ticker and waits for its goroutine
	draining  chan struct{}
	// sessionGuardian supervises every session. It is one value for the
	// node's life because protoactor registers a guardian process per
	// strategy value and never removes it: a strategy per connection leaked
	// one process per connection ever opened.
	sessionGuardian actor.SupervisorStrategy
	// sessionPool runs every session's mailbox (see sessionDispatcher).
	sessionPool *sessionDispatcher
	// sessionProps spawns the sessions of Connect.
	sessionProps *actor.Props
	// shutDown is set by the first Shutdown: later calls return at once
	// (protoactor's ActorSystem.Shutdown panics when called twice).
	shutDown atomic.Bool
	started  time.Time
	stats    statsCache // the stats command's answer (stats.go)
}

// NewNode starts a node: its actor system, its hub and its broker.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, metrics: &Metrics{}, log: cfg.Logger.With(KeyNode, cfg.NodeID), draining: make(chan struct{}), started: time.Now()}
	n.sessionGuardian = stopSessionOnPanic(n.metrics)
	n.sessionPool = newSessionDispatcher()
	n.sessionProps = actor.PropsFromProducer(func() actor.Actor { return &session{node: n} },
		actor.WithGuardian(n.sessionGuardian), actor.WithDispatcher(n.sessionPool))
	protoLog := slog.New(quietInfo{n.log.Handler()}).With("lib", "protoactor")
	n.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoLog }),
		actor.WithDeadLetterRequestLogging(false),
	)
	n.root = n.system.Root
	n.timers = scheduler.NewTimerScheduler(n.root)
	hubProps := actor.PropsFromProducer(func() actor.Actor { return newHub(n) },
		actor.WithGuardian(resumeHubOnPanic(n.metrics)),
		actor.WithMailbox(n.metrics.hubMailboxProducer),
		actor.WithSupervisor(resumeRoomOnPanic{metrics: n.metrics}))
	hub, err := n.root.SpawnNamed(hubProps, "hub")
	if err != nil {
		return nil, fmt.Errorf("actors: spawn hub: %w", err)
	}
	n.hub = hub
	host := BrokerHost{Root: n.root, NodeID: cfg.NodeID, Hub: hub, Prefix: cfg.ChannelPrefix, DirectWait: cfg.JoinRetry / 2}
	if err := cfg.Broker.Start(host); err != nil {
		n.root.StopFuture(hub).Wait()
		return nil, fmt.Errorf("actors: start broker: %w", err)
	}
	cfg.Broker.Subscribe(BroadcastChannel(cfg.ChannelPrefix), hub)
	cfg.Broker.Subscribe(NodeChannel(cfg.ChannelPrefix, cfg.NodeID), hub)
	n.stopPings = n.startHeartbeat(cfg.PingInterval, cfg.PongTimeout)
	return n, nil
}

// startHeartbeat ticks the hub every interval (the hub forwards the tick to
// every session, which queues a ping) and, timeout after each tick, sends
// the check that drops the sessions whose peer sent nothing since that tick.
// The goroutine ends when the returned function is called; protoactor's
// SendRepeatedly is not used because its cancellation races with the timer
// it cancels.
func (n *Node) startHeartbeat(interval, timeout time.Duration) func() {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		check := time.NewTimer(time.Hour)
		check.Stop()
		defer check.Stop()
		var due []time.Time // ticks whose check is pending, oldest first
		var seq uint32      // the latest tick's
		for {
			select {
			case now := <-t.C:
				seq++
				n.root.Send(n.hub, heartbeatTick{seq: seq})
				if len(due) == 0 {
					check.Reset(timeout)
				}
				due = append(due, now)
			case <-check.C:
				n.root.Send(n.hub, &heartbeatCheck{since: due[0], seq: seq - uint32(len(due)-1)})
				due = due[1:]
				if len(due) > 0 {
					check.Reset(time.Until(due[0].Add(timeout)))
				}
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// Config returns the node's normalised configuration.
func (n *Node) Config() Config { return n.cfg }

// Metrics exposes the node's counters (read-only use).
func (n *Node) Metrics() *Metrics { return n.metrics }

// BrokerState reports the broker's health.
func (n *Node) BrokerState() BrokerState { return n.cfg.Broker.State() }

// System is the node's actor system, for programs that add their own actors.
func (n *Node) System() *actor.ActorSystem { return n.system }

// Hub is the PID of the node's hub actor.
func (n *Node) Hub() *actor.PID { return n.hub }

// Draining reports whether Drain has begun.
func (n *Node) Draining() bool {
	select {
	case <-n.draining:
		return true
	default:
		return false
	}
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
}

// Connect spawns the session actor for an accepted connection. The returned
// PID takes Commands (from the read side) and *SocketClosed.
func (n *Node) Connect(conn Conn, opts SessionOptions) SessionHandle {
	// One Props for every session, and the connection in the first message
	// rather than in a producer closure: a closure and a Props per session
	// would stay allocated as long as it lives (about 0.5 KiB each).
	pid := n.root.SpawnPrefix(n.sessionProps, "session-")
	n.root.Send(pid, &sessionInit{conn: conn, opts: opts})
	return SessionHandle{pid}
}

// Deliver hands a session a message: what its connection sent (a
// wire.Command, as wire.DecodeCommand returns it), the connection's end
// (*SocketClosed), a *CloseSession, or a *wire.Event to write. It never
// blocks; a session that has ended drops it.
func (n *Node) Deliver(h SessionHandle, msg any) { n.root.Send(h.pid, msg) }

// PublishResult reports what a server-side publish reached.
type PublishResult struct {
	// Local is the number of local connections the event was handed to.
	Local int `json:"local_recipients"`
	// Broker is true when the broker accepted the publish for other nodes.
	Broker bool `json:"broker_accepted"`
}

// PublishRoom delivers payload (an event object with an "event" field) to
// every member of room on every node.
func (n *Node) PublishRoom(ctx context.Context, room string, payload []byte) (PublishResult, error) {
	if !wire.ValidRoomName(room) {
		return PublishResult{}, ErrInvalidRoom
	}
	return n.publish(ctx, &apiPublish{kind: wire.EnvRoom, target: room}, payload)
}

// PublishUser delivers payload to every connection of user on every node.
func (n *Node) PublishUser(ctx context.Context, user string, payload []byte) (PublishResult, error) {
	if user == "" {
		return PublishResult{}, ErrInvalidUser
	}
	return n.publish(ctx, &apiPublish{kind: wire.EnvDirect, target: user}, payload)
}

// Broadcast delivers payload to every connection on every node.
func (n *Node) Broadcast(ctx context.Context, payload []byte) (PublishResult, error) {
	return n.publish(ctx, &apiPublish{kind: wire.EnvBroadcast}, payload)
}

// Publish errors.
var (
	ErrInvalidRoom    = errors.New("actors: invalid room name")
	ErrInvalidUser    = errors.New("actors: invalid user")
	ErrInvalidPayload = errors.New("actors: payload must be a JSON object with a string \"event\" field")
)

func (n *Node) publish(ctx context.Context, req *apiPublish, payload []byte) (PublishResult, error) {
	p, err := wire.ValidateEventPayload(payload)
	if err != nil {
		return PublishResult{}, ErrInvalidPayload
	}
	req.event = wire.NewEvent(p).Timed()
	env := &wire.Envelope{Type: req.kind, Node: n.cfg.NodeID, Payload: p}
	switch req.kind {
	case wire.EnvRoom:
		env.Room = req.target
	case wire.EnvDirect:
		env.Target = req.target
	}
	res := PublishResult{}
	var berr error
	if req.kind == wire.EnvDirect {
		done := make(chan error, 1)
		n.cfg.Broker.SendDirect(req.target, env, func(_ int, err error) { done <- err })
		select {
		case berr = <-done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	} else {
		ch := BroadcastChannel(n.cfg.ChannelPrefix)
		if req.kind == wire.EnvRoom {
			ch = RoomChannel(n.cfg.ChannelPrefix, req.target)
		}
		berr = n.cfg.Broker.Publish(ch, env)
	}
	if berr == nil {
		n.metrics.BrokerOut.Add(1)
	} else {
		n.metrics.Unavailable.Add(1)
	}
	res.Broker = berr == nil
	f := n.root.RequestFuture(n.hub, req, requestTimeout(ctx))
	v, err := f.Result()
	if err != nil {
		return res, err
	}
	res.Local = v.(*apiPublished).local
	return res, nil
}

func requestTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return 5 * time.Second
}

// Drain closes every session with 1001 and waits until they are gone or ctx
// ends. New connections should be refused by the caller from the start.
func (n *Node) Drain(ctx context.Context) error {
	select {
	case <-n.draining:
	default:
		close(n.draining)
	}
	n.root.Send(n.hub, &closeAll{code: wire.CloseGoingAway, reason: "node shutting down"})
	return n.WaitSessions(ctx, 0)
}

// WaitSessions waits until at most target sessions are live, or ctx ends.
func (n *Node) WaitSessions(ctx context.Context, target int64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for n.metrics.Sessions.Load() > target {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Shutdown drains the node, stops its hub and rooms and closes the broker.
// It is idempotent and bounded by ctx.
func (n *Node) Shutdown(ctx context.Context) error {
	if !n.shutDown.CompareAndSwap(false, true) {
		return nil
	}
	derr := n.Drain(ctx)
	if n.stopPings != nil {
		n.stopPings()
	}
	done := make(chan struct{})
	go func() {
		n.root.StopFuture(n.hub).Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	berr := n.cfg.Broker.Close(ctx)
	n.system.Shutdown()
	return errors.Join(derr, berr)
}

// Kill stops the actor with the given id (as reported by Actors) from
// outside, or makes it panic when crash is true. It is what chaos tests and
// the optional operator endpoint use.
func (n *Node) Kill(id string, crash bool) bool {
	pid := n.system.NewLocalPID(id)
	if _, ok := n.system.ProcessRegistry.GetLocal(id); !ok {
		return false
	}
	if crash {
		n.root.Send(pid, &Crash{Reason: "external"})
	} else {
		n.root.Stop(pid)
	}
	return true
}

// RandomID returns n random bytes as URL-safe base64 (at least 8 characters for n >= 6).
func RandomID(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
