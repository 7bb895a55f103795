// Heartbeats: the node ticks the hub every PingInterval, the hub forwards
// the tick to every session, which queues a ping, and PongTimeout after
// each tick a check drops the sessions whose peer has sent nothing since.

package actors

import "time"

// silentSincePing reports whether the peer has been silent for a whole pong
// timeout after its ping went out, and since the tick the check is for.
// The tick that queues the ping and the check both wait in the hub's and
// the session's mailboxes; when the check waited less than the tick (any
// jitter on a busy node, a mass exit at worst) it comes less than a pong
// timeout after the ping it judges. A peer that could not have answered
// yet must not be dropped for it, and a silent one must not wait a whole
// ping interval for the next check either: wait is then how long after
// the check to judge the same tick again (zero: judged).
//
// A check the session scheduled itself carries its deadline (due) and is
// judged by it alone: the pings it was computed from have moved on since,
// and judging it again by them would schedule it again, without end.
func (s *session) silentSincePing(hc HeardConn, m *heartbeatCheck) (silent bool, wait time.Duration) {
	if !hc.LastHeard().Before(m.since) {
		return false, 0
	}
	if m.due != 0 {
		if now := monoNow(); now < m.due {
			return false, time.Duration(m.due - now)
		}
		return true, 0
	}
	// When the ping of the check's tick went out; if the session no longer
	// holds it (more ticks than pings kept were handled since), it went
	// out before the oldest ping held for a later tick.
	var sent int64
	for _, p := range s.pings {
		if p.at != 0 && (p.seq == m.seq || p.seq > m.seq && sent == 0) {
			sent = p.at
		}
	}
	if sent == 0 {
		return false, 0 // no ping for that tick: a later check judges the peer
	}
	// The ping went out after the tick, so silence since the tick is
	// silence since the ping. (When it is no longer held, it went out
	// before sent: a pong timeout after sent is past its own.)
	if age := time.Duration(monoNow() - sent); age < s.node.cfg.PongTimeout {
		return false, s.node.cfg.PongTimeout - age
	}
	return true, 0
}

// ping is a heartbeat ping a session queued: its tick, and when (monoNow).
type ping struct {
	seq uint32
	at  int64
}

// monoBase anchors monoNow on the monotonic clock.
var monoBase = time.Now()

// monoNow is the time since monoBase: 8 bytes a session, immune to jumps of
// the wall clock.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// startHeartbeat ticks the hub every interval (the hub forwards the tick to
// every session, which queues a ping) and, timeout after each tick, sends
// the check that drops the sessions whose peer sent nothing since that tick.
// The goroutine ends when the returned function is called; protoactor's
// SendRepeatedly is not used because its cancellation races with the timer
// it cancels.
func (n *Node) startHeartbeat(interval, timeout time.Duration) func() {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		check := time.NewTimer(time.Hour)
		check.Stop()
		defer check.Stop()
		var due []time.Time // ticks whose check is pending, oldest first
		var seq uint32      // the latest tick's
		for {
			select {
			case now := <-t.C:
				seq++
				n.root.Send(n.hub, heartbeatTick{seq: seq})
				if len(due) == 0 {
					check.Reset(timeout)
				}
				due = append(due, now)
			case <-check.C:
				n.root.Send(n.hub, &heartbeatCheck{since: due[0], seq: seq - uint32(len(due)-1)})
				due = due[1:]
				if len(due) > 0 {
					check.Reset(time.Until(due[0].Add(timeout)))
				}
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
