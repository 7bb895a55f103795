package port

import (
	"math/bits"
	"sync/atomic"
	"time"
)

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
	SilentClosed atomic.Int64 // sessions closed for silence past a heartbeat (see HeardConn)
	PolicyClosed atomic.Int64 // sessions closed 1008
	Unavailable  atomic.Int64 // publishes refused by the broker
	BrokerIn     atomic.Int64 // envelopes received from the broker
	BrokerOut    atomic.Int64 // envelopes handed to the broker

	SubscribeTimeouts atomic.Int64 // rooms that refused joins: the broker did not confirm their channel in time
	Restarts          atomic.Int64 // actor restarts and resumes after a panic
	SessionPanic      atomic.Int64 // sessions stopped by a panic
	RoomPanic         atomic.Int64 // room panics (resumed)
	HubPanic          atomic.Int64 // hub panics (resumed)
	FanoutSizes       atomic.Int64 // sum of local recipients over all fan-outs
	Fanouts           atomic.Int64 // fan-outs performed

	// Room history (docs/protocol.md, section 6).
	Recovered           atomic.Int64 // publications sent to joiners that recovered with since
	RecoveriesFailed    atomic.Int64 // joins with since answered recovered:false (other epoch, or trimmed)
	HistoryGaps         atomic.Int64 // publications a room never received and could no longer read
	HistoryReadTimeouts atomic.Int64 // position or gap reads given up after half the join retry
	HistoryTrimmed      atomic.Int64 // history answers cut to their newest publications to fit the reply budget
	RecoveriesTooBig    atomic.Int64 // joins with since answered recovered:false because what they missed exceeded the reply budget

	// DeliveryLatency is, in microseconds, the time from a message reaching
	// the node (a client command handled, an envelope from the broker, an API
	// publish) to its frame being queued on a recipient's socket writer. One
	// delivery in LatencySampleEvery per session is observed: timing every
	// one would cost a clock read and two shared atomic adds per recipient.
	DeliveryLatency Histogram
	// FanoutSize is the number of local recipients of each fan-out (a
	// room's members on this node, or every local session for a broadcast).
	FanoutSize Histogram

	hubDepth atomic.Pointer[func() int] // set once when the hub's mailbox is made (TrackHubMailbox)
}

// LatencySampleEvery is how often a session times a delivery: one in this
// many.
const LatencySampleEvery = 8

// HubMailboxDepth is the number of messages waiting for the hub actor, the
// node's directory: a growing queue there delays joins, broadcasts and
// broker traffic for everyone. Read on demand from the mailbox, so it costs
// nothing per message; 0 until the hub has a mailbox.
func (m *Metrics) HubMailboxDepth() int {
	if depth := m.hubDepth.Load(); depth != nil {
		return (*depth)()
	}
	return 0
}

// TrackHubMailbox makes HubMailboxDepth report depth, which must be safe
// to call from any goroutine. The node calls it once, when it makes its
// hub's mailbox.
func (m *Metrics) TrackHubMailbox(depth func() int) { m.hubDepth.Store(&depth) }

// HistogramBuckets is the number of finite buckets of a Histogram: bucket i
// counts the values v with 2^(i-1) < v <= 2^i (bucket 0: v <= 1).
const HistogramBuckets = 32

// Histogram is a lock-free histogram with power-of-two bucket bounds, in
// whatever unit its owner documents. Observe is two atomic adds and may run
// on any goroutine; Snapshot is for readers (the /metrics handler). The zero
// value is ready to use.
type Histogram struct {
	buckets [HistogramBuckets + 1]atomic.Uint64 // the last one: beyond 2^(HistogramBuckets-1)
	sum     atomic.Int64
}

// Observe records one value; negative values count as 0.
func (h *Histogram) Observe(v int64) {
	if v < 0 {
		v = 0
	}
	i := 0
	if v > 1 {
		i = bits.Len64(uint64(v - 1)) // smallest i with v <= 2^i
	}
	if i > HistogramBuckets {
		i = HistogramBuckets
	}
	h.buckets[i].Add(1)
	h.sum.Add(v)
}

// ObserveSince records the microseconds elapsed since t.
func (h *Histogram) ObserveSince(t time.Time) { h.Observe(int64(time.Since(t) / time.Microsecond)) }

// HistogramSnapshot is a histogram read at one moment: Counts[i] is the
// number of values in bucket i (not cumulative); the last entry counts the
// values beyond every finite bucket.
type HistogramSnapshot struct {
	Counts [HistogramBuckets + 1]uint64
	Count  uint64
	Sum    int64
}

// Snapshot reads the histogram. Concurrent observations may land on either
// side of it; Count is the sum of Counts, so the two always agree.
func (h *Histogram) Snapshot() HistogramSnapshot {
	var s HistogramSnapshot
	for i := range h.buckets {
		s.Counts[i] = h.buckets[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = h.sum.Load()
	return s
}
