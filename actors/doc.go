// Package actors is Switchboard's core: the actor system that routes
// messages between WebSocket clients, built on protoactor-go.
//
// Every connection is a session actor, every room with a local member is a
// room actor, and the hub actor owns the node's directory (users to sessions,
// room names to room actors). They exchange typed messages only; there is no
// shared map behind a lock. A session tells the hub and its rooms when it
// stops, so however a session ends (close, write error, panic, Stop from
// outside) the same cleanup runs: sessionEnded in the hub, roomLeave in the
// rooms (sent from the session's Stopped, which protoactor runs however it
// stopped). A room that stops with members tells them (roomGone) and they
// re-join a fresh one; the hub learns of a room's end the same way
// (roomEnded), unless it retired the room itself.
//
// The package knows nothing of HTTP or Redis. The transport package feeds
// sessions with decoded client commands and gives them a Conn to write to;
// the cluster package implements the Broker port that joins nodes.
//
// Ownership: each actor's fields are touched only by its Receive. Metrics
// are atomics written by actors and read by HTTP handlers.
package actors
