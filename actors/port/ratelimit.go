package port

import "time"

// TokenBucket limits events per second: it holds up to Burst tokens, refills
// at Rate tokens per second, and each allowed event spends one. A session
// uses one for client commands; the transport uses one per connection for
// WebSocket ping frames.
//
// It is a plain value owned by one goroutine (a session actor's Receive, or
// one connection's read loop) and is not safe for concurrent use. Time is
// passed in, so callers read the clock once per event and tests control it.
type TokenBucket struct {
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64 // capacity, at least 1 when rate > 0
	tokens float64
	last   time.Time
}

// NewTokenBucket returns a full bucket. rate <= 0 allows everything; a burst
// below 1 is raised to 1 so that a positive rate can ever allow an event.
func NewTokenBucket(rate float64, burst int, now time.Time) TokenBucket {
	b := float64(burst)
	if b < 1 {
		b = 1
	}
	return TokenBucket{rate: rate, burst: b, tokens: b, last: now}
}

// Allow spends one token if one is available. A clock that goes backwards
// adds nothing (the refill uses only positive elapsed time).
func (b *TokenBucket) Allow(now time.Time) bool {
	if b.rate <= 0 {
		return true
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
