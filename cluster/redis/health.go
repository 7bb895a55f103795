package redis

import (
	"sync"
	"time"
)

// health tracks which pub/sub connections are up, for State and for the
// outbox's gate. It is written by the connection actors and read by HTTP
// handlers and the outbox writer.
type health struct {
	mu        sync.Mutex // guards the fields below
	up        []bool
	downSince time.Time // when the first connection went down; zero while all are up
	epoch     uint64    // bumped each time all connections are up again
	lastOut   time.Duration
}

func (h *health) init(n int) {
	h.up = make([]bool, n)
	h.downSince = time.Now()
}

// set records connection i's state. It returns true when this made every
// connection up (a recovery).
func (h *health) set(i int, up bool) (recovered bool, outage time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up[i] == up {
		return false, 0
	}
	h.up[i] = up
	if !up {
		if h.downSince.IsZero() {
			h.downSince = time.Now()
		}
		return false, 0
	}
	for _, u := range h.up {
		if !u {
			return false, 0
		}
	}
	outage = time.Since(h.downSince)
	h.downSince = time.Time{}
	h.epoch++
	h.lastOut = outage
	return true, outage
}

func (h *health) upCount() (up, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.up {
		if u {
			up++
		}
	}
	return up, len(h.up)
}

// allUp reports whether every connection is up, and the recovery epoch.
func (h *health) allUp() (bool, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downSince.IsZero(), h.epoch
}
