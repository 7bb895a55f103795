package port

// SessionHandle names one session of the core to code outside it: the
// transport gets it from Node.Connect and hands it its connection's
// commands and end with Node.Deliver, and never sees what is behind it.
// The zero value names no session. A handle is a small value; copies name
// the same session.
type SessionHandle struct{ ref SessionRef }

// SessionRef is what the core puts in a handle: its own reference to the
// session (the actors package: the session actor's PID).
type SessionRef interface {
	// ID is the session's id, as the core's directory reports it.
	ID() string
}

// NewSessionHandle wraps the core's reference to a session. Only the core
// calls it; a nil ref gives the zero handle.
func NewSessionHandle(ref SessionRef) SessionHandle { return SessionHandle{ref} }

// Ref is the core's reference to the session, nil for the zero handle.
func (h SessionHandle) Ref() SessionRef { return h.ref }

// Valid reports whether h names a session.
func (h SessionHandle) Valid() bool { return h.ref != nil }

// ID is the session's id, as the core's directory reports it; "" for the
// zero handle.
func (h SessionHandle) ID() string {
	if h.ref == nil {
		return ""
	}
	return h.ref.ID()
}

// SocketClosed tells a session that its connection is gone (read side
// ended); the transport delivers it behind the connection's last frames.
type SocketClosed struct{ Err error }

// IgnoreDeadLetterLogging keeps the actor runtime from logging it when the
// session has already stopped itself (the normal race of a close).
func (*SocketClosed) IgnoreDeadLetterLogging() {}
