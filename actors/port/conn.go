package port

import (
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Conn is the outbound side of one client connection, as the session actor
// sees it. The transport implements it over a gws connection; actor tests use
// a fake. Only the owning session actor calls Enqueue and Flush; Close and
// Abort may also be called once by the session when it stops.
//
// None of the methods may block: bytes are queued and written by a writer the
// Conn owns, so a client that stops reading stalls only its own writer.
type Conn interface {
	// Enqueue appends one complete frame to the pending output, without
	// copying it (frames are shared and immutable). It returns false when the
	// pending bytes would exceed the connection's budget: the caller treats the
	// client as a slow consumer.
	Enqueue(frame []byte) bool
	// Flush starts writing everything pending, in one system call where the
	// platform allows (writev).
	Flush()
	// Close writes what is pending, then a close frame, then closes.
	Close(code wire.CloseCode, reason string)
	// Abort discards what is pending, then writes a close frame and closes.
	Abort(code wire.CloseCode, reason string)
}

// BudgetedConn is a Conn that tells its outbound budget: the bytes it
// lets wait for the client before it counts the client as a slow consumer.
// The session keeps the answers it sends in one piece (a history answer,
// a recovery) well within it.
type BudgetedConn interface {
	Conn
	PendingBudget() int
}

// HeardConn is a Conn that knows when its peer last sent a frame (a message,
// a ping, a pong). The session of such a Conn drops it when nothing came
// from the peer within Config.PongTimeout of a heartbeat ping. A Conn that
// does not implement it is never dropped for silence.
type HeardConn interface {
	Conn
	// LastHeard is when the peer's latest frame arrived; it may be called
	// from the session while the transport's reader updates it.
	LastHeard() time.Time
	// DropSilent closes the connection as Close(CloseNormal, SilentReason)
	// would, and lets the transport count it as a silent peer.
	DropSilent()
}
