package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// publisher sends one stream of load messages: frame appends message seq
// (sent at now) to dst.
type publisher struct {
	c     *loadClient
	room  int
	frame func(dst []byte, seq int, now time.Time) []byte
}

// publish is the measured phase of the room and broadcast scenarios. Each
// publisher sends --messages messages, paced by --rate or by --window (at
// most that many of its messages not yet received by every recipient).
// Publishing stops at the run's deadline, or when a window makes no progress
// for --drain (deliveries lost); what was sent is then still accounted.
// After the last send it waits up to --drain for deliveries in flight.
func (r *run) publish(ctx context.Context, pubs []publisher, rs *runState, res *Result) {
	o := r.o
	var sent atomic.Int64
	var truncated atomic.Bool
	r.setPhase("publishing", func() string {
		return fmt.Sprintf("sent %d/%d, delivered %d/%d", sent.Load(), len(pubs)*o.messages, rs.delivered.Load(), rs.expected.Load())
	})
	r.startCPU()
	rs.start = time.Now()
	var wg sync.WaitGroup
	for i, p := range pubs {
		// At --rate, publisher i is shifted by i/len(pubs) of the interval,
		// so that publishers do not all send in the same instant (a burst
		// of len(pubs) fan-outs every interval is not a steady rate).
		phase := time.Duration(0)
		if o.rate > 0 {
			phase = time.Duration(float64(i) / float64(len(pubs)) / o.rate * float64(time.Second))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, o.size+256)
			for seq := 0; seq < o.messages; seq++ {
				if !r.pace(ctx, rs, p.room, seq, phase) {
					truncated.Store(true)
					return
				}
				now := time.Now()
				buf = p.frame(buf[:0], seq, now)
				rs.expected.Add(int64(rs.perMsg))
				if err := p.c.send(buf); err != nil {
					rs.expected.Add(-int64(rs.perMsg))
					truncated.Store(true)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()

	r.setPhase("draining", func() string { return fmt.Sprintf("delivered %d/%d", rs.delivered.Load(), rs.expected.Load()) })
	deadline := time.Now().Add(o.drain)
	for rs.delivered.Load() < rs.expected.Load() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-time.After(5 * time.Millisecond):
		}
	}
	end := rs.lastDelivery()
	res.Sent = sent.Load()
	res.Expected = rs.expected.Load()
	res.Received = rs.delivered.Load()
	res.Lost = res.Expected - res.Received
	res.Errors = rs.errors.Load()
	res.Truncated = truncated.Load()
	if el := end.Sub(rs.start); el > 0 {
		res.Seconds = el.Seconds()
		res.DeliveriesPerSec = float64(res.Received) / el.Seconds()
	}
	lat := rs.latency.Summary()
	res.Latency = &lat
	res.ServerCPUPerDelivery = r.cpuPerDelivery(res.Received)
}

// pace waits until message seq of room may be sent: its due time at --rate
// (shifted by phase),
// or a free slot in the window. It returns false when the run must stop.
func (r *run) pace(ctx context.Context, rs *runState, room, seq int, phase time.Duration) bool {
	o := r.o
	if o.rate > 0 {
		due := rs.start.Add(phase + time.Duration(float64(seq)/o.rate*float64(time.Second)))
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(d):
			}
		}
	}
	if int64(seq)-rs.completed[room].Load() < int64(o.window) {
		return ctx.Err() == nil
	}
	stall := time.NewTimer(o.drain)
	defer stall.Stop()
	for int64(seq)-rs.completed[room].Load() >= int64(o.window) {
		select {
		case <-ctx.Done():
			return false
		case <-stall.C:
			return false // no progress for --drain: deliveries were lost
		case <-rs.progress[room]:
		}
	}
	return ctx.Err() == nil
}
