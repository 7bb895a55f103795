package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// sessionRef is a session actor's PID as the core's side of a
// port.SessionHandle: a conversion, so a handle costs no allocation.
type sessionRef actor.PID

// ID is the session actor's id, as Directory reports it.
func (r *sessionRef) ID() string { return r.Id }

// handleOf is the handle of the session actor pid.
func handleOf(pid *actor.PID) SessionHandle { return port.NewSessionHandle((*sessionRef)(pid)) }

// pidOf is the session actor behind h; nil for the zero handle and for a
// handle another core made.
func pidOf(h SessionHandle) *actor.PID {
	r, _ := h.Ref().(*sessionRef)
	return (*actor.PID)(r)
}
