package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/internal/handle"
	"github.com/switchboard-rt/switchboard/actors/port"
)

// actorHost is port.ActorHost over one protoactor actor system: the actor
// API that brokers build their actors on (see package port). A Ref it
// gives out carries the system's root context, through which it is
// delivered, so that a Ref of one node's system reaches its actor from
// anywhere (the in-process fabric delivers to every node of a process).
type actorHost struct {
	sys  *actor.ActorSystem
	root *actor.RootContext
	pool *actorPool // runs Spec.Pooled actors; nil: they get the default dispatcher
}

var _ port.ActorHost = (*actorHost)(nil)

// Actors is the node's actor host: the actor API (package port) over the
// node's actor system, for brokers (it is BrokerHost.Actors) and for
// programs that add actors of their own without importing protoactor.
func (n *Node) Actors() port.ActorHost { return &actorHost{sys: n.system, root: n.root, pool: n.pool} }

// ref is the handle on one of the node's actors.
func (n *Node) ref(pid *actor.PID) port.Ref { return refOf(n.root, pid) }

func refOf(root *actor.RootContext, pid *actor.PID) port.Ref {
	if pid == nil {
		return port.Ref{}
	}
	return handle.New(pid.Id, root, pid)
}

// target unwraps a Ref: the root context of its actor's system and its PID.
// A zero Ref (or one not made here) gives a nil root.
func target(r port.Ref) (*actor.RootContext, *actor.PID) {
	root, _ := handle.Home(r).(*actor.RootContext)
	pid, _ := handle.Impl(r).(*actor.PID)
	return root, pid
}

// errNoActor is what a host answers for a Ref that names no actor.
var errNoActor = errors.New("actors: no actor behind the handle")

func (h *actorHost) Spawn(spec port.Spec) (port.Ref, error) {
	props := h.props(spec)
	var pid *actor.PID
	var err error
	switch {
	case spec.Name != "":
		pid, err = h.root.SpawnNamed(props, spec.Name)
	case spec.Prefix != "":
		pid = h.root.SpawnPrefix(props, spec.Prefix)
	default:
		pid = h.root.Spawn(props)
	}
	if err != nil {
		return port.Ref{}, fmt.Errorf("actors: spawn %q: %w", spec.Name, err)
	}
	return refOf(h.root, pid), nil
}

func (h *actorHost) Send(to port.Ref, msg any) {
	if root, pid := target(to); root != nil {
		root.Send(pid, msg)
	}
}

func (h *actorHost) Request(to port.Ref, msg any, timeout time.Duration) (any, error) {
	root, pid := target(to)
	if root == nil {
		return nil, errNoActor
	}
	return root.RequestFuture(pid, msg, timeout).Result()
}

func (h *actorHost) Stop(ctx context.Context, to port.Ref) error {
	root, pid := target(to)
	if root == nil {
		return errNoActor
	}
	stopped := make(chan struct{})
	// The waiter ends with the stop, or at the stop future's own bound
	// (10 s) if ctx ends first.
	go func() {
		_ = root.StopFuture(pid).Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *actorHost) Detached() (port.ActorHost, func()) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	return &actorHost{sys: sys, root: sys.Root}, sys.Shutdown
}

// props turns a Spec into protoactor Props.
func (h *actorHost) props(spec port.Spec) *actor.Props {
	opts := make([]actor.PropsOption, 0, 4)
	switch {
	case spec.Priority:
		opts = append(opts, actor.WithMailbox(actor.UnboundedPriority()))
	case spec.Pooled && h.pool != nil:
		opts = append(opts, h.pool.pooled()...)
	}
	if spec.RestartChild != nil {
		opts = append(opts, actor.WithSupervisor(&restartAfter{root: h.root, decide: spec.RestartChild}))
	}
	if spec.ResumeOnPanic != nil {
		onPanic := spec.ResumeOnPanic
		opts = append(opts, actor.WithGuardian(actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
			onPanic(reason)
			return actor.ResumeDirective
		})))
	}
	newBehavior := spec.New
	return actor.PropsFromProducer(func() actor.Actor {
		return &hosted{host: h, behavior: newBehavior()}
	}, opts...)
}

// restartAfter is the protoactor strategy behind Spec.RestartChild: it asks
// decide for the delay and restarts the child from a timer, so that the
// supervisor's goroutine never waits.
type restartAfter struct {
	root   *actor.RootContext
	decide func(child port.Ref, stats port.RestartStats, reason any) time.Duration
}

func (s *restartAfter) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason any, _ any) {
	delay := s.decide(refOf(s.root, child), rs, reason)
	if delay <= 0 {
		sup.RestartChildren(child)
		return
	}
	time.AfterFunc(delay, func() { sup.RestartChildren(child) })
}
