package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Node is one Switchboard node's actor system: the hub, its rooms and the
// sessions. It knows nothing of HTTP; the transport package connects
// WebSockets to it, and embedding programs may publish through it directly.
type Node struct {
	cfg       Config
	history   HistoryConfig // cfg.history(): Size 0 when off
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
	// roomGuardian supervises every room (resumeRoomOnPanic), one value
	// for the same reason; roomsLive counts the rooms spawned and not yet
	// stopped, which Shutdown waits for.
	roomGuardian actor.SupervisorStrategy
	roomsLive    sync.WaitGroup
	// roomProps spawns every room: one Props for all of them, as for
	// sessions (a Props per room cost ~0.2 KiB for as long as it lived).
	// Its producer takes the room the hub made for the spawn it is doing
	// (nextRoom, touched only by the hub; see spawnRoom).
	roomProps *actor.Props
	nextRoom  *room
	// sessionPool runs every session's mailbox (see sessionDispatcher).
	sessionPool *sessionDispatcher
	// pool runs the mailboxes of rooms and of pooled broker actors (see
	// actorPool).
	pool *actorPool
	// sessionProps spawns the sessions of Connect.
	sessionProps *actor.Props
	// shutDown is set by the first Shutdown: later calls return at once
	// (protoactor's ActorSystem.Shutdown panics when called twice).
	shutDown atomic.Bool
	started  time.Time
	stats    statsCache // the stats command's answer (stats.go)
	// hubMailbox is the hub's mailbox, set once when the hub spawns
	// (hubMailboxProducer).
	hubMailbox atomic.Pointer[actor.Mailbox]
}

// NewNode starts a node: its actor system, its hub and its broker.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, metrics: &Metrics{}, log: cfg.Logger.With(KeyNode, cfg.NodeID), draining: make(chan struct{}), started: time.Now()}
	n.sessionGuardian = stopSessionOnPanic(n.metrics)
	n.roomGuardian = resumeRoomOnPanic{metrics: n.metrics}
	n.sessionPool = newSessionDispatcher()
	n.pool = newActorPool()
	n.roomProps = actor.PropsFromProducer(n.takeRoom, append(n.pool.pooled(), actor.WithGuardian(n.roomGuardian))...)
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
		actor.WithMailbox(n.hubMailboxProducer))
	hub, err := n.root.SpawnNamed(hubProps, "hub")
	if err != nil {
		return nil, fmt.Errorf("actors: spawn hub: %w", err)
	}
	n.hub = hub
	n.history = cfg.history()
	host := BrokerHost{Actors: n.Actors(), NodeID: cfg.NodeID, Hub: n.ref(hub), Prefix: cfg.ChannelPrefix, DirectWait: cfg.JoinRetry / 2, History: cfg.history()}
	if err := cfg.Broker.Start(host); err != nil {
		n.root.StopFuture(hub).Wait()
		return nil, fmt.Errorf("actors: start broker: %w", err)
	}
	cfg.Broker.Subscribe(BroadcastChannel(cfg.ChannelPrefix), n.ref(hub))
	cfg.Broker.Subscribe(NodeChannel(cfg.ChannelPrefix, cfg.NodeID), n.ref(hub))
	n.stopPings = n.startHeartbeat(cfg.PingInterval, cfg.PongTimeout)
	return n, nil
}

// live reports whether a local actor is still registered. protoactor
// unregisters an actor before its Stopped runs, so anything an actor
// sends from its Stopped arrives after it stopped looking live.
func (n *Node) live(pid *actor.PID) bool {
	_, ok := n.system.ProcessRegistry.GetLocal(pid.Id)
	return ok
}

// takeRoom is the rooms' producer: protoactor calls it inside the hub's
// spawn (spawnRoom), and at a restart, which the room guardian never
// orders (a room is resumed or stopped: its members cannot be rebuilt).
func (n *Node) takeRoom() actor.Actor {
	r := n.nextRoom
	if r == nil {
		panic("actors: a room was restarted; rooms are only resumed or stopped")
	}
	n.nextRoom = nil
	return r
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

// Connect spawns the session actor for an accepted connection. The returned
// handle names it to Deliver, which takes Commands (from the read side) and
// *SocketClosed.
func (n *Node) Connect(conn Conn, opts SessionOptions) SessionHandle {
	// One Props for every session, and the connection in the first message
	// rather than in a producer closure: a closure and a Props per session
	// would stay allocated as long as it lives (about 0.5 KiB each).
	pid := n.root.SpawnPrefix(n.sessionProps, "session-")
	n.root.Send(pid, &sessionInit{conn: conn, opts: opts})
	return handleOf(pid)
}

// Deliver hands a session a message: what its connection sent (a
// wire.Command, as wire.DecodeCommand returns it), the connection's end
// (*SocketClosed), a *CloseSession, or a *wire.Event to write. It never
// blocks; a session that has ended drops it, and so does the zero handle.
func (n *Node) Deliver(h SessionHandle, msg any) {
	if pid := pidOf(h); pid != nil {
		n.root.Send(pid, msg)
	}
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
	done, roomsDone := make(chan struct{}), make(chan struct{})
	go func() {
		n.root.StopFuture(n.hub).Wait()
		close(done)
	}()
	select {
	case <-done:
		// The hub's Stopping stopped the rooms; they unsubscribe before
		// the broker closes.
		go func() {
			n.roomsLive.Wait()
			close(roomsDone)
		}()
		select {
		case <-roomsDone:
		case <-ctx.Done():
		}
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
