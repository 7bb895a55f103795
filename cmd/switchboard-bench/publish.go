package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// publisher sends one stream of load messages: frame appends message seq
// (stamped with sent) to dst.
type publisher struct {
	c     *loadClient
	room  int
	frame func(dst []byte, seq int, sent time.Time) []byte
}

// sendAll is the sending half of the measured phase of the room and
// broadcast scenarios, from rs.start. Each publisher sends --messages
// messages, paced by --rate or by --window (see pace). Publishing stops at
// the run's deadline, or when a window makes no progress for --drain
// (deliveries lost). It returns the messages sent per room (of rooms) and
// whether a publisher stopped early.
//
// At --rate the load is open-loop: message seq is due at a fixed time of the
// schedule and carries that time, not the moment it left, so latency is
// measured from when the message should have been sent. A publisher that
// falls behind (a full socket buffer, a stalled node) sends what is overdue
// back to back and the wait shows in the latency, instead of the schedule
// slipping with the server and hiding its queue (coordinated omission).
func (r *run) sendAll(ctx context.Context, pubs []publisher, rs *runState, rooms int) ([]int64, bool) {
	o := r.o
	var sent atomic.Int64
	var truncated atomic.Bool
	perRoom := make([]int64, rooms)
	r.setPhase("publishing", func() string {
		return fmt.Sprintf("sent %d/%d, delivered %d/%d", sent.Load(), len(pubs)*o.messages, rs.delivered.Load(), rs.expected.Load())
	})
	var wg sync.WaitGroup
	for _, p := range pubs {
		// At --rate, room i's publisher is shifted by i/rooms of the
		// interval, so that publishers do not all send in the same instant
		// (a burst of fan-outs every interval is not a steady rate).
		phase := time.Duration(0)
		if o.rate > 0 {
			phase = time.Duration(float64(p.room) / float64(rooms) / o.rate * float64(time.Second))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, o.size+256)
			n := 0
			defer func() { perRoom[p.room] = int64(n) }()
			for seq := 0; seq < o.messages; seq++ {
				stamp, ok := r.pace(ctx, rs, p.room, seq, phase)
				if !ok {
					truncated.Store(true)
					return
				}
				buf = p.frame(buf[:0], seq, stamp)
				rs.expected.Add(int64(rs.perMsg[p.room]))
				if err := p.c.send(buf); err != nil {
					rs.expected.Add(-int64(rs.perMsg[p.room]))
					truncated.Store(true)
					return
				}
				n++
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	return perRoom, truncated.Load()
}

// drain waits up to --drain for the deliveries still in flight
// (rs.expected).
func (r *run) drain(ctx context.Context, rs *runState) {
	r.setPhase("draining", func() string { return fmt.Sprintf("delivered %d/%d", rs.delivered.Load(), rs.expected.Load()) })
	deadline := time.Now().Add(r.o.drain)
	for rs.delivered.Load() < rs.expected.Load() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// pace waits until message seq of room may be sent and returns the time to
// stamp it with. At --rate that is its due time (shifted by phase): the
// schedule's, whatever the send is held up by. Without --rate, or at --rate
// with an explicit --window (closed loop), a message also waits for a free
// slot in the window: at most --window of the room's messages not yet
// received by every recipient in this process; without --rate it is
// stamped when the slot frees. It returns false when the run must stop.
func (r *run) pace(ctx context.Context, rs *runState, room, seq int, phase time.Duration) (time.Time, bool) {
	o := r.o
	var due time.Time
	if o.rate > 0 {
		due = rs.start.Add(phase + time.Duration(float64(seq)/o.rate*float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return due, false
			case <-time.After(d):
			}
		}
		if !o.closedLoop() {
			return due, ctx.Err() == nil
		}
	}
	// A process that holds none of the room's recipients cannot see its
	// progress: its window does not apply.
	if rs.perMsg[room] == 0 || int64(seq)-rs.completed[room].Load() < int64(o.window) {
		return stamp(due), ctx.Err() == nil
	}
	stall := time.NewTimer(o.drain)
	defer stall.Stop()
	for int64(seq)-rs.completed[room].Load() >= int64(o.window) {
		select {
		case <-ctx.Done():
			return due, false
		case <-stall.C:
			return due, false // no progress for --drain: deliveries were lost
		case <-rs.progress[room]:
		}
	}
	return stamp(due), ctx.Err() == nil
}

// stamp is due when set (paced by --rate), otherwise now.
func stamp(due time.Time) time.Time {
	if due.IsZero() {
		return time.Now()
	}
	return due
}
