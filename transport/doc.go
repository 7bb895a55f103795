// Package transport serves a Switchboard node over HTTP: WebSocket upgrades
// (github.com/lxzan/gws) on /ws and /ws/secure, with authentication, origin
// and capacity decided before the upgrade, and the operational endpoints
// /stats, /healthz, /readyz and /metrics.
//
// Reads: each connection's bytes pass the frame gate (framegate.go), which
// refuses hostile frame headers before gws parses them and charges frames
// announced and not yet received to a node-wide budget; gws's read loop
// then appends each frame to the connection's shard of the inbox
// (inbox.go), whose drainer decodes it (actors/wire) and delivers the
// command to the session through its port.SessionHandle. A read loop
// waits only on its own socket, on its connection's inbox budget, or (a
// frame announced while the frame budget is spent) on that budget for at
// most 5 s. Writes go through a per-connection queue (wireConn) that a
// short-lived writer drains with one writev per batch, so no actor and no
// read loop ever blocks on a slow client.
//
// The package sees the node only through actors/port: New takes a
// port.Node (an *actors.Node in cmd/switchboard and docs/embedding.md), and
// a connection's session is an opaque port.SessionHandle. It does not
// import the actors package or the actor runtime (TestSeamsKeepTheActorRuntimeInside
// in cmd/switchboard).
package transport
