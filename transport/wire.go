package transport

import (
	"errors"
	"net"
	"sync"
	"time"
)

// wireConn sits between gws and the accepted TCP connection. Reads pass
// straight through. Every write - gws's own (the 101 response, pongs, close
// frames) and the session's pre-built data frames - is queued, and the
// whole queue goes to the kernel in one writev(2): first by the session's
// flush itself, once and without blocking (writeNow), then, for what the
// socket did not take at once, by a writer goroutine, which exists only
// while there is something left to write. One turn of writing runs at a
// time (writing), so frames never interleave.
//
// Why: one write(2) per frame per recipient is what limits naive fan-out
// (10-17 us of CPU each on a 2-core VM); writing everything a session's
// mailbox held in one call delivered 8-18x more messages per second in the
// same setup (docs/benchmarks.md). Queued writes also mean that neither the
// session actor nor gws's read loop ever blocks on a slow client.
//
// Ownership: mu guards every field below it. Enqueue and Flush are called by
// the session actor; Write, Close and the deadline setters by gws (read loop
// and the session's goroutine); run is the writer goroutine. The inline
// write in Flush and run hold no lock while in the kernel.
type wireConn struct {
	net.Conn

	maxPending   int           // bytes queued but not yet written; more is a slow consumer
	writeTimeout time.Duration // bound of one writev
	closeGrace   time.Duration // how long a closing connection may take to flush

	mu      sync.Mutex
	queue   net.Buffers // frames waiting; data frames are shared, not copied
	spare   net.Buffers // the writer's previous batch, reused
	pending int         // bytes in queue
	writing bool        // a turn of writing is under way: Flush's inline write or the writer goroutine
	inWrite bool        // the writer is inside a writev: the client has not taken that batch yet
	closing bool        // Close was called: write what is queued, then close
	closed  bool        // gws queued its close frame: no data frame may follow it
	closeBy time.Time   // deadline for the final flush
	dead    bool        // the raw connection is closed
	onIdle  func()      // test hook: the writer went idle
}

func newWireConn(c net.Conn, maxPending int, writeTimeout, closeGrace time.Duration) *wireConn {
	return &wireConn{Conn: c, maxPending: maxPending, writeTimeout: writeTimeout, closeGrace: closeGrace}
}

// Enqueue queues one immutable frame without copying it. It reports false
// when the pending bytes would exceed maxPending while the client has not
// taken the batch it was last given (the writer is blocked in a writev): a
// slow consumer. Over the budget with no write in progress, the client has
// not had a chance yet - a burst reached its session in one mailbox run (a
// broker backlog after an outage, a CPU-starved process) - so the writer is
// started at once instead; the frames are shared, the queue costs a slice
// entry each.
func (w *wireConn) Enqueue(frame []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing || w.closed || w.dead {
		return true // the session is about to learn of the close; nothing to do
	}
	if w.pending+len(frame) > w.maxPending {
		if w.inWrite {
			return false
		}
		w.kickLocked()
	}
	w.queue = append(w.queue, frame)
	w.pending += len(frame)
	return true
}

// Flush hands what is queued to the kernel. With no writer running, it
// first tries once on the caller's goroutine without blocking (writeNow):
// at light load that is the whole batch, a frame or a few, written with no
// hand-off to a writer goroutine and no write deadline to arm; whatever
// the socket does not take at once goes to the writer, as before.
func (w *wireConn) Flush() {
	w.mu.Lock()
	if w.writing || w.dead || w.closing || len(w.queue) == 0 {
		w.kickLocked()
		w.mu.Unlock()
		return
	}
	batch := w.queue
	w.queue = w.spare[:0]
	w.spare = nil
	total := w.pending
	w.pending = 0
	w.writing = true // gws's own writes queue behind the batch meanwhile
	w.mu.Unlock()

	n, tried, err := writeNow(w.Conn, batch)

	w.mu.Lock()
	w.writing = false
	switch {
	case err != nil:
		w.dead = true
		clear(w.queue)
		w.queue = nil
		w.pending = 0
		_ = w.Conn.Close()
	case !tried || n < total:
		// What the socket did not take goes first, ahead of anything gws
		// queued meanwhile.
		w.queue = append(unwritten(batch, n), w.queue...)
		w.pending += total - n
	default:
		w.spare = batch[:0]
	}
	clear(batch)
	if len(w.queue) > 0 || w.dead {
		w.kickLocked() // the rest, and whatever gws queued meanwhile
		w.mu.Unlock()
		return
	}
	idle := w.idleLocked() // Close may have come during the write
	w.mu.Unlock()
	if idle != nil {
		idle()
	}
}

// idleLocked ends a turn of writing that left nothing queued: a connection
// whose Close came meanwhile (and left the close to the writer) is closed
// now. It returns the test hook, to be called once mu is released.
func (w *wireConn) idleLocked() func() {
	if w.closing && !w.dead {
		w.dead = true
		_ = w.Conn.Close()
	}
	return w.onIdle
}

// unwritten is what is left of batch after its first n bytes were
// written: a new slice (batch's array is reused), the frames shared.
func unwritten(batch net.Buffers, n int) net.Buffers {
	rest := make(net.Buffers, 0, len(batch))
	for _, b := range batch {
		switch {
		case n >= len(b):
			n -= len(b)
		case n > 0:
			rest = append(rest, b[n:])
			n = 0
		default:
			rest = append(rest, b)
		}
	}
	return rest
}

func (w *wireConn) kickLocked() {
	if !w.writing && !w.dead && len(w.queue) > 0 {
		w.writing = true
		go w.run()
	}
}

// Discard drops queued frames that the writer has not taken yet (a batch
// being written is finished or cut by its deadline, never split).
func (w *wireConn) Discard() {
	w.mu.Lock()
	clear(w.queue)
	w.queue = w.queue[:0]
	w.pending = 0
	w.mu.Unlock()
}

// controlSlack is how far gws's own frames (pongs, the close frame) may go
// past maxPending while the client is not taking what it was given (the
// same test as Enqueue's): a close frame still fits behind a full queue,
// while a client that pings and never reads is cut instead of growing the
// queue.
const controlSlack = 4 << 10

// errSlowPeer fails a gws write that would grow the queue past the budget;
// gws then closes the connection.
var errSlowPeer = errors.New("transport: peer does not read: write queue full")

// Write is used by gws for its own frames and the handshake response. gws
// reuses p after Write returns, so it is copied.
func (w *wireConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead || (w.closing && !w.writing && len(w.queue) == 0) {
		return 0, net.ErrClosed
	}
	if w.inWrite && w.pending+len(p) > w.maxPending+controlSlack {
		return 0, errSlowPeer
	}
	w.queue = append(w.queue, append([]byte(nil), p...))
	w.pending += len(p)
	if len(p) > 0 && p[0] == closeFrameHead {
		// RFC 6455, 5.5.1: nothing may follow a close frame. gws queues
		// it (answering the client's, or closing) before Close is called,
		// and a session may still enqueue frames meanwhile.
		w.closed = true
	}
	w.kickLocked()
	return len(p), nil
}

// closeFrameHead is the first byte of a server's close frame: FIN and
// opcode 8. No other write begins with it (the handshake response begins
// with "HTTP"; server data frames are text or binary).
const closeFrameHead = 0x88

// Close marks the connection closing: what is queued (typically a close
// frame) is written within closeGrace, then the socket is closed. It never
// blocks.
func (w *wireConn) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing || w.dead {
		return nil
	}
	w.closing = true
	w.closeBy = time.Now().Add(w.closeGrace)
	if w.writing {
		// Cut a write stuck on a client that does not read.
		_ = w.Conn.SetWriteDeadline(w.closeBy)
		return nil
	}
	if len(w.queue) > 0 {
		w.writing = true
		go w.run()
		return nil
	}
	w.dead = true
	return w.Conn.Close()
}

// SetDeadline and SetWriteDeadline: the writer owns write deadlines, so
// only the read side is passed on (gws sets both around the handshake).
func (w *wireConn) SetDeadline(t time.Time) error      { return w.Conn.SetReadDeadline(t) }
func (w *wireConn) SetWriteDeadline(t time.Time) error { return nil }

// run is the writer goroutine: it writes batches until the queue is empty.
func (w *wireConn) run() {
	for {
		w.mu.Lock()
		if len(w.queue) == 0 || w.dead {
			w.writing = false
			idle := w.idleLocked()
			w.mu.Unlock()
			if idle != nil {
				idle()
			}
			return
		}
		batch := w.queue
		w.queue = w.spare[:0]
		w.pending = 0
		deadline := time.Now().Add(w.writeTimeout)
		if w.closing && w.closeBy.Before(deadline) {
			deadline = w.closeBy
		}
		w.inWrite = true
		w.mu.Unlock()

		_ = w.Conn.SetWriteDeadline(deadline)
		var err error
		if len(batch) == 1 {
			// A lone frame (light load) is one write(2): cheaper here than
			// a writev(2) of one buffer.
			_, err = w.Conn.Write(batch[0])
		} else {
			bufs := batch
			_, err = bufs.WriteTo(w.Conn)
		}
		clear(batch)

		w.mu.Lock()
		w.inWrite = false
		w.spare = batch[:0]
		if err != nil {
			// The client is gone or too slow: close; gws's read loop then
			// fails and OnClose stops the session.
			w.dead = true
			w.writing = false
			clear(w.queue)
			w.queue = nil
			w.pending = 0
			w.mu.Unlock()
			_ = w.Conn.Close()
			return
		}
		w.mu.Unlock()
	}
}
