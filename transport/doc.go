// Package transport serves a Switchboard node over HTTP: WebSocket upgrades
// (github.com/lxzan/gws) on /ws and /ws/secure, with authentication, origin
// and capacity decided before the upgrade, and the operational endpoints
// /stats, /healthz, /readyz and /metrics.
//
// The gws read loop only decodes frames and hands typed commands to the
// session actor. Writes go through a per-connection queue (wireConn) that a
// short-lived writer drains with one writev per batch, so no actor and no
// read loop ever blocks on a slow client.
package transport
