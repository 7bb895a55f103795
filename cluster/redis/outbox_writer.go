package redis

import (
	"context"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// run is the writer goroutine.
func (o *outbox) run() {
	defer close(o.exited)
	defer o.finish()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait, more := o.step()
		if !more {
			return
		}
		if d, ok := o.untilExpiry(); ok && (wait < 0 || d < wait) {
			wait = max(d, 0)
		}
		if wait == 0 {
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		quit := o.quit
		if o.quitting() {
			quit = nil // seen already; step decides what it means
		}
		select {
		case <-o.wake:
		case <-tc:
		case <-quit:
		case <-o.r.ctx.Done():
			return
		}
		if wait > 0 && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step does one unit of work. It returns how long to wait before the next
// (0: go on, negative: until signalled) and false when the writer is done.
func (o *outbox) step() (time.Duration, bool) {
	o.expireDirects(time.Now())
	quitting := o.quitting()
	if o.len() == 0 {
		if quitting {
			return 0, false
		}
		if o.failing.Load() {
			return o.ping(), true
		}
		return -1, true
	}
	if o.gate.transition(o.reading()) {
		o.resendRecent()
	}
	if !o.gate.state.sends() {
		if quitting {
			return 0, false // Redis is not there to flush to
		}
		return -1, true // a connection coming up signals
	}
	if wait := time.Until(o.retryAt); wait > 0 {
		if quitting && o.failures > 2 {
			return 0, false
		}
		return wait, true
	}
	n, wait := o.sendable()
	if n == 0 {
		return wait, true
	}
	o.send(n)
	return 0, true
}

// reading is the pub/sub connections' health now, as an event of the gate.
func (o *outbox) reading() outEvent {
	up, epoch := o.r.health.allUp()
	if !up {
		return outEvent{kind: evDown, epoch: epoch}
	}
	return outEvent{kind: evUp, epoch: epoch, at: time.Now(), peers: o.r.pres.peers()}
}

// conn returns the writer's client, creating one after a failure.
func (o *outbox) conn() goredis.UniversalClient {
	if o.client == nil {
		o.client = o.r.newClient("pub")
		o.scripts = false
	}
	return o.client
}

// failed records a failed round trip: the next attempt waits a backoff and
// uses a fresh connection.
func (o *outbox) failed(err error) {
	o.r.stats.sendFailures.Add(1)
	o.failures++
	o.retryAt = time.Now().Add(backoff(o.failures, o.r.cfg.ReconnectMin, o.r.cfg.ReconnectMax))
	if !o.failing.Swap(true) {
		o.r.log.Warn("redis publish failing; holding the outbox", keyErr, err)
	}
	if o.client != nil {
		_ = o.client.Close()
		o.client = nil
	}
}

func (o *outbox) succeeded() {
	o.failures = 0
	if o.failing.Swap(false) {
		o.r.log.Info("redis publish recovered", "outbox", o.len())
	}
}

// ping checks a failing connection while there is nothing to send, so that
// State recovers without traffic.
func (o *outbox) ping() time.Duration {
	if wait := time.Until(o.retryAt); wait > 0 {
		return wait
	}
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	if err := o.conn().Ping(ctx).Err(); err != nil {
		o.failed(err)
		return time.Until(o.retryAt)
	}
	o.succeeded()
	return 0
}

// finish runs when the writer returns: queued direct messages are refused,
// the connection released.
func (o *outbox) finish() {
	o.mu.Lock()
	left := slices.Clone(o.items[o.head:])
	o.mu.Unlock()
	for _, it := range left {
		if it.kind == outDirect {
			it.answer(0, port.ErrUnavailable)
		}
	}
	if o.client != nil {
		_ = o.client.Close()
		o.client = nil
	}
}
