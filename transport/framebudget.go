package transport

import (
	"math/bits"
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

// cost is what a frame of length bytes is charged, given that avail of its
// payload bytes are already here. A whole message that is already here,
// or one whose buffer is small, costs nothing: gws reads it at once, and
// small buffers are bounded by the number of connections. Otherwise the
// charge is what gws reserves for it before the payload arrives: its read
// buffer (the payload plus 4, rounded up to a power of two, at least 128
// bytes) and, for a fragment, twice the payload for the buffer the message
// accumulates in (which grows by doubling).
func (g *frameGate) cost(length, avail uint64) int64 {
	op, fin := g.hdr[0]&0x0F, g.hdr[0]&bitFIN != 0
	if op >= opClose {
		return 0 // at most 125 bytes, read into a buffer of their own size
	}
	buf := readBufferCost(length)
	lone := fin && op != opCont
	if lone && (avail >= length || buf <= freeFrameBytes) {
		return 0
	}
	if lone {
		return buf
	}
	return buf + 2*int64(length)
}

// freeFrameBytes is the largest read buffer a lone frame may take without
// a charge: every connection may hold one while its payload arrives.
const freeFrameBytes = 4 << 10

// frameBudgetWait bounds how long a frame waits for the budget before its
// connection is closed with 1013; meanwhile that connection's read loop
// waits (TCP backpressure) and every other connection goes on.
const frameBudgetWait = 5 * time.Second

// readBufferCost is the size of the buffer gws takes from its pool for a
// frame of length bytes.
func readBufferCost(length uint64) int64 {
	n := length + 4
	if n <= 128 {
		return 128
	}
	if n > 256<<10 {
		return int64(n) // gws allocates larger buffers exactly
	}
	return int64(1) << bits.Len64(n-1)
}

// release gives the connection's budget back.
func (g *frameGate) release() {
	if g.held > 0 {
		g.limits.budget.give(int64(g.held))
		g.held = 0
	}
	g.bufFee = 0
}

// midMessage reports whether a fragmented message is open: control frames
// sent meanwhile do not count as signs of life, so a client cannot hold a
// half-sent message (and its budget) open by answering pings.
func (g *frameGate) midMessage() bool { return g.inMsg }

// maxMessageCost is what the largest message may be charged: sent as
// fragments, its read buffers and the buffer it accumulates in.
func maxMessageCost(maxMessage int) int64 {
	return readBufferCost(uint64(maxMessage)) + 2*int64(maxMessage)
}
