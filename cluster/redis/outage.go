package redis

import (
	"log/slog"
	"sync"
	"time"
)

// outageRepeatMax is the longest a continuing outage goes without a line.
const outageRepeatMax = 5 * time.Minute

// outageLog reports an outage of the pub/sub connections at a slowing
// rate. Each connection that fails is restarted after a backoff (at most
// ReconnectMax, 1 s by default), and while Redis is away every restart
// fails again: a warning per failure was two lines a second per node for
// as long as the outage lasted. Instead the first failure is a warning;
// then a line comes after 1, 2, 4, 8, ... failed reconnection attempts
// (counted over all the node's pub/sub connections) or outageRepeatMax
// after the previous line, whichever is first, with the attempt count
// and the time Redis has been away; the others are logged at debug. The
// recovery (every connection subscribed again) is one line at info, with
// the count. Connection actors call it, each from its own goroutine.
type outageLog struct {
	mu       sync.Mutex // guards the fields below
	failures int        // failures since the outage began; 0 while every connection is up
	since    time.Time  // when the outage began
	lastLine time.Time  // when the last line about it was written
}

// failed reports a failure of pub/sub connection conn. The lines that
// are due are written under the lock, so that they come out in the order
// of their counts.
func (l *outageLog) failed(log *slog.Logger, conn int, err error) {
	now := time.Now()
	l.mu.Lock()
	if l.failures == 0 {
		l.since = now
	}
	l.failures++
	attempts := l.failures - 1
	switch {
	case attempts == 0:
		l.lastLine = now
		log.Warn("redis pub/sub connection failed; reconnecting with backoff", "conn", conn, keyErr, err)
	case attempts&(attempts-1) == 0 || now.Sub(l.lastLine) >= outageRepeatMax:
		l.lastLine = now
		log.Warn("redis still unreachable", "attempts", attempts, "down_for", now.Sub(l.since).Round(time.Millisecond),
			"conn", conn, keyErr, err)
	default:
		l.mu.Unlock()
		log.Debug("redis reconnection failed", "attempts", attempts, "conn", conn, keyErr, err)
		return
	}
	l.mu.Unlock()
}

// recovered ends the outage and returns how many reconnection attempts
// failed during it.
func (l *outageLog) recovered() (attempts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	attempts = max(l.failures-1, 0)
	l.failures = 0
	return attempts
}
