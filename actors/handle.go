package actors

import "github.com/asynkron/protoactor-go/actor"

// SessionHandle names one session actor to code outside the actor system:
// the transport hands it its connection's commands and end with
// Node.Deliver, and never sees the actor runtime behind it. The zero value
// names no session. A handle is a small value; copies name the same
// session.
type SessionHandle struct{ pid *actor.PID }

// Valid reports whether h names a session.
func (h SessionHandle) Valid() bool { return h.pid != nil }

// ID is the session's id, as Directory reports it; "" for the zero handle.
func (h SessionHandle) ID() string {
	if h.pid == nil {
		return ""
	}
	return h.pid.Id
}
