package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// frameBudget bounds the memory that all connections of a node together
// may have reserved for client frames announced and not yet received
// (frameGate charges it). Taking is lock-free; a read loop that must wait
// registers as a waiter and is woken by the next give.
//
// Ownership: used and waits are atomic (every read loop); mu guards freed,
// which a give closes and replaces when someone waits.
type frameBudget struct {
	limit   int64
	used    atomic.Int64
	waiters atomic.Int32
	waits   atomic.Uint64 // frames that had to wait
	refused atomic.Uint64 // frames whose connection was closed after waiting in vain

	mu    sync.Mutex
	freed chan struct{}
}

func newFrameBudget(limit int64) *frameBudget {
	return &frameBudget{limit: limit, freed: make(chan struct{})}
}

// take reserves n bytes if they are free.
func (b *frameBudget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// wait reserves n bytes, waiting at most d for them to be given back.
func (b *frameBudget) wait(n int64, d time.Duration) bool {
	b.waits.Add(1)
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		b.waiters.Add(1)
		b.mu.Lock()
		freed := b.freed
		b.mu.Unlock()
		// Taking after registering: a give between the failed take and
		// the registration would otherwise be missed.
		ok := b.take(n)
		if ok {
			b.waiters.Add(-1)
			return true
		}
		select {
		case <-freed:
			b.waiters.Add(-1)
		case <-timer.C:
			b.waiters.Add(-1)
			if b.take(n) {
				return true
			}
			b.refused.Add(1)
			return false
		}
	}
}

// give returns n bytes and wakes the waiters.
func (b *frameBudget) give(n int64) {
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		close(b.freed)
		b.freed = make(chan struct{})
		b.mu.Unlock()
	}
}
