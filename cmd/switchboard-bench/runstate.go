package main

import (
	"sync/atomic"
	"time"
)

// runState is the delivery accounting of one measured phase, shared by every
// client's read loop (writers) and the scenario goroutine (reader). All of
// it is atomic or immutable after newRunState.
type runState struct {
	start     time.Time
	perMsg    []int32          // [room]: recipients of each of its messages (in this process)
	counts    [][]atomic.Int32 // [room][seq]: recipients that got it
	completed []atomic.Int64   // [room]: messages every recipient got (in order, see deliver)
	progress  []chan struct{}  // [room]: poked when completed grows (capacity 1)

	expected  atomic.Int64 // deliveries expected so far (grows as messages are sent)
	delivered atomic.Int64
	lastAt    atomic.Int64 // unix nanos of the latest delivery
	errors    atomic.Int64
	latency   histogram
}

// newRunState tracks messages per room; recipients[room] is how many
// connections of this process receive each message of that room.
func newRunState(messages int, recipients []int32) *runState {
	rooms := len(recipients)
	r := &runState{perMsg: recipients}
	r.counts = make([][]atomic.Int32, rooms)
	r.completed = make([]atomic.Int64, rooms)
	r.progress = make([]chan struct{}, rooms)
	for i := range r.counts {
		r.counts[i] = make([]atomic.Int32, messages)
		r.progress[i] = make(chan struct{}, 1)
	}
	return r
}

// deliver records one delivery of message seq of room, d after it was sent.
// Each connection receives its room's messages in order, so message seq is
// complete (all recipients have it) only after every earlier one is: the
// completion counter can simply be incremented.
func (r *runState) deliver(room, seq int, d time.Duration) {
	if room < 0 || room >= len(r.counts) || seq < 0 || seq >= len(r.counts[room]) {
		return
	}
	r.latency.Record(d)
	r.delivered.Add(1)
	r.lastAt.Store(time.Now().UnixNano())
	if r.counts[room][seq].Add(1) == r.perMsg[room] {
		r.completed[room].Add(1)
		select {
		case r.progress[room] <- struct{}{}:
		default:
		}
	}
}

// lastDelivery is the time of the latest delivery, or start if none.
func (r *runState) lastDelivery() time.Time {
	if n := r.lastAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return r.start
}

// sameRecipients is a recipients slice for rooms that all have n.
func sameRecipients(rooms, n int) []int32 {
	out := make([]int32, rooms)
	for i := range out {
		out[i] = int32(n)
	}
	return out
}
