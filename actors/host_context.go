package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// hosted is one incarnation of an actor spawned through the actor API: the
// protoactor actor that runs a port.Behavior, and the port.Context it
// hands it. Its fields are touched only by Receive (and by the Behavior's
// Receive, through the Context, while it runs).
type hosted struct {
	host     *actorHost
	behavior port.Behavior
	ctx      actor.Context // the context of the message being handled
	msg      any           // the message, lifecycle messages translated
}

// The lifecycle messages carry nothing: one value of each serves every actor.
var (
	startedMsg    = &port.Started{}
	stoppingMsg   = &port.Stopping{}
	stoppedMsg    = &port.Stopped{}
	restartingMsg = &port.Restarting{}
)

func (a *hosted) Receive(ctx actor.Context) {
	a.ctx = ctx
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.msg = startedMsg
	case *actor.Stopping:
		a.msg = stoppingMsg
	case *actor.Stopped:
		a.msg = stoppedMsg
	case *actor.Restarting:
		a.msg = restartingMsg
	case *actor.Terminated:
		clearVacatedChildSlot(ctx) // a broker's bus has a child per channel
		a.msg = &port.Terminated{Who: a.ref(m.Who)}
	default:
		a.msg = m
	}
	a.behavior.Receive(a)
}

// ref is a handle on pid, an actor of this actor's system.
func (a *hosted) ref(pid *actor.PID) port.Ref { return refOf(a.host.root, pid) }

func (a *hosted) Message() any     { return a.msg }
func (a *hosted) Self() port.Ref   { return a.ref(a.ctx.Self()) }
func (a *hosted) Parent() port.Ref { return a.ref(a.ctx.Parent()) }
func (a *hosted) Sender() port.Ref { return a.ref(a.ctx.Sender()) }
func (a *hosted) Respond(msg any)  { a.ctx.Respond(msg) }

// Send goes through the root context of to's own system: the same path as
// protoactor's Context.Send, and the right registry when to is another
// node's actor.
func (a *hosted) Send(to port.Ref, msg any) {
	if root, pid := target(to); root != nil {
		root.Send(pid, msg)
	}
}

func (a *hosted) Request(to port.Ref, msg any) {
	if _, pid := target(to); pid != nil {
		a.ctx.Request(pid, msg)
	}
}

func (a *hosted) Poison(to port.Ref) {
	if root, pid := target(to); root != nil {
		root.Poison(pid)
	}
}

func (a *hosted) Stop(to port.Ref) {
	if root, pid := target(to); root != nil {
		root.Stop(pid)
	}
}

func (a *hosted) Watch(to port.Ref) {
	if _, pid := target(to); pid != nil {
		a.ctx.Watch(pid)
	}
}

func (a *hosted) Unwatch(to port.Ref) {
	if _, pid := target(to); pid != nil {
		a.ctx.Unwatch(pid)
	}
}

func (a *hosted) Spawn(spec port.Spec) (port.Ref, error) {
	props := a.host.props(spec)
	var pid *actor.PID
	var err error
	switch {
	case spec.Name != "":
		pid, err = a.ctx.SpawnNamed(props, spec.Name)
	case spec.Prefix != "":
		pid = a.ctx.SpawnPrefix(props, spec.Prefix)
	default:
		pid = a.ctx.Spawn(props)
	}
	if err != nil {
		return port.Ref{}, fmt.Errorf("actors: spawn %q: %w", spec.Name, err)
	}
	return a.ref(pid), nil
}
