package port

import (
	"context"
	"time"

	"github.com/switchboard-rt/switchboard/actors/internal/handle"
)

// The actor API: what the cluster's actors (the in-process fabric, the
// Redis bus, its pub/sub connections and subscriptions) need from an actor
// runtime, and no more.
//
// Underneath it is protoactor (github.com/asynkron/protoactor-go), the
// same actor system as the node's sessions, rooms and hub: package actors
// implements ActorHost over it and hands one to every broker in
// BrokerHost. The seam exists so that protoactor stays inside package
// actors: the cluster packages build against these few types, never see a
// *actor.PID, and a change of runtime (or of how it is configured) is a
// change of package actors alone. The semantics are protoactor's, named
// here where the cluster relies on them: one message at a time per actor,
// in order per sender; a parent supervises its children and hears of
// their end; a restarted actor keeps its mailbox.

// Ref is an opaque handle on one actor, given out by an ActorHost (and by
// package actors for the rooms and the hub it subscribes to a broker). It
// is a small value: copy it, keep it, send to it with ActorHost.Send or
// Context.Send. Compare two Refs with Equal, not ==: two handles on one
// actor may differ in their inner address. ID is the actor's id, unique in
// its node (what actors.Node.Kill takes); the zero Ref (IsZero) names no
// actor.
type Ref = handle.Ref

// Behavior is an actor's behaviour: Receive handles one message at a time,
// never two at once, and must not block. A panic in Receive is handled by
// the actor's supervisor (see Spec).
type Behavior interface {
	Receive(ctx Context)
}

// BehaviorFunc is a Behavior made of a function.
type BehaviorFunc func(ctx Context)

// Receive calls f.
func (f BehaviorFunc) Receive(ctx Context) { f(ctx) }

// Context is what an actor's Receive may use, only while it runs and only
// on its goroutine.
type Context interface {
	// Message is the message being handled: a user message, or one of
	// the lifecycle messages (*Started, *Stopping, *Stopped, *Restarting,
	// *Terminated).
	Message() any
	// Self is this actor; Parent, the actor that spawned it (zero for an
	// actor spawned by an ActorHost); Sender, the actor that sent the
	// message with Request (zero otherwise).
	Self() Ref
	Parent() Ref
	Sender() Ref
	// Send delivers msg to to's mailbox; it never blocks. A message to an
	// actor that has stopped is dropped.
	Send(to Ref, msg any)
	// Request sends msg to to, an actor of the same host, with this actor
	// as its sender: the answer (Respond) arrives as a message.
	Request(to Ref, msg any)
	// Respond answers the sender of the message being handled.
	Respond(msg any)
	// Spawn starts a child of this actor: it is stopped with this actor,
	// supervised by it (Spec.RestartChild) and its end arrives here as
	// *Terminated.
	Spawn(spec Spec) (Ref, error)
	// Poison stops to after the messages already in its mailbox; Stop
	// stops it after the message it is handling.
	Poison(to Ref)
	Stop(to Ref)
	// Watch makes to's end arrive here as *Terminated (children are
	// watched from their spawn); Unwatch undoes it.
	Watch(to Ref)
	Unwatch(to Ref)
}

// ActorHost spawns and reaches actors from outside any actor: a broker's
// methods, its goroutines and its timers. Every method may be called from
// any goroutine.
type ActorHost interface {
	// Spawn starts an actor with no parent actor; it lives until stopped.
	Spawn(spec Spec) (Ref, error)
	// Send delivers msg to to's mailbox; it never blocks.
	Send(to Ref, msg any)
	// Request sends msg to to and waits up to timeout for its answer
	// (Context.Respond).
	Request(to Ref, msg any, timeout time.Duration) (any, error)
	// Stop stops to and waits until it and its children have stopped, or
	// until ctx ends (ctx.Err then).
	Stop(ctx context.Context, to Ref) error
	// Detached starts a host of its own, with an actor system that logs
	// nothing, for actors shared by several nodes that must outlive any
	// one of them (the in-process fabric). stop ends it; call it once,
	// after its actors have stopped.
	Detached() (host ActorHost, stop func())
}

// Spec describes an actor to spawn.
type Spec struct {
	// New makes the actor's behaviour: once at the spawn and again at
	// every restart (state that must survive a restart lives elsewhere).
	// Required.
	New func() Behavior
	// Name is the actor's name under its parent (its id is the parent's
	// id, "/" and Name; under a host, Name); Spawn fails if it is taken.
	// Zero: a unique name that starts with Prefix.
	Name   string
	Prefix string
	// Priority gives the actor a mailbox that hands it the messages
	// implementing Prioritized in priority order, then in arrival order.
	// Zero: arrival order only.
	Priority bool
	// Pooled runs the actor on the node's worker pool instead of a
	// goroutine per activation, for actors a node holds by the hundred
	// thousand (one per channel) that never block in Receive. On the pool
	// their teardown (a Stop, a PoisonPill, an Unwatch, a watched actor's
	// Terminated) waits behind other work, so that a mass exit does not
	// delay the rest. Ignored with Priority.
	Pooled bool
	// RestartChild supervises the actor's children: on a child's panic it
	// returns how long to wait before restarting it (at once when not
	// positive); the restarted child keeps its mailbox. It runs on this
	// actor's goroutine, and may update stats (the child's failures).
	// Zero: the runtime's default, a restart at once.
	RestartChild func(child Ref, stats RestartStats, reason any) time.Duration
	// ResumeOnPanic, when set, is called with the panic value when the
	// actor panics, and the actor resumes: the message is dropped, the
	// state kept. Zero: the parent decides (RestartChild), or, for an
	// actor spawned by a host, a restart at once.
	ResumeOnPanic func(reason any)
}

// RestartStats are one child's failures, kept across its restarts.
type RestartStats interface {
	// FailureCount is the number of failures recorded.
	FailureCount() int
	// NumberOfFailures is the number recorded within the last d.
	NumberOfFailures(d time.Duration) int
	// Fail records a failure now; Reset forgets them all.
	Fail()
	Reset()
}

// Prioritized is a message that a priority mailbox (Spec.Priority) hands
// over ahead of those of lower priority. Priorities run from 0 to 7; a
// message without the method has DefaultPriority.
type Prioritized interface {
	GetPriority() int8
}

// DefaultPriority is the priority of a message that is not Prioritized.
const DefaultPriority int8 = 4

// Lifecycle messages, as Context.Message returns them.
type (
	// Started: the actor (or a new incarnation after a restart) starts;
	// it is its first message.
	Started struct{}
	// Stopping: the actor is about to stop its children and stop.
	Stopping struct{}
	// Stopped: the actor has stopped; its last message.
	Stopped struct{}
	// Restarting: the actor panicked and is about to be replaced by a new
	// incarnation (Spec.New); its last message in this incarnation.
	Restarting struct{}
	// Terminated: Who, a child or a watched actor, has stopped.
	Terminated struct{ Who Ref }
)

// Crash makes the receiving actor panic: every actor handles it, for chaos
// tests and the operator's kill endpoint (actors.Node.Kill).
type Crash struct{ Reason string }
