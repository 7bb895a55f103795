package actors

import "sync/atomic"

// Metrics are the node's counters. Every field is written by actors with
// atomic adds and read by the transport (/stats, /metrics) from HTTP handler
// goroutines; nothing else touches them.
type Metrics struct {
	Sessions     atomic.Int64 // live session actors
	Rooms        atomic.Int64 // live room actors
	Users        atomic.Int64 // distinct users with a local session
	Connections  atomic.Int64 // sessions opened, total
	MessagesIn   atomic.Int64 // client commands received
	MessagesOut  atomic.Int64 // frames queued to clients
	BytesOut     atomic.Int64 // bytes queued to clients
	Errors       atomic.Int64 // error events sent
	ErrorsByCode ErrorCounts  // error events sent, by protocol error code
	RateLimited  atomic.Int64 // commands refused with rate_limited
	SlowClosed   atomic.Int64 // sessions closed 1013 (outbound budget exceeded)
	PolicyClosed atomic.Int64 // sessions closed 1008
	Unavailable  atomic.Int64 // publishes refused by the broker
	BrokerIn     atomic.Int64 // envelopes received from the broker
	BrokerOut    atomic.Int64 // envelopes handed to the broker
	Restarts     atomic.Int64 // actor restarts and resumes after a panic
	SessionPanic atomic.Int64 // sessions stopped by a panic
	RoomPanic    atomic.Int64 // room panics (resumed)
	HubPanic     atomic.Int64 // hub panics (resumed)
	FanoutSizes  atomic.Int64 // sum of local recipients over all fan-outs
	Fanouts      atomic.Int64 // fan-outs performed
}
