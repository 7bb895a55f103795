package transport

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// inbox carries client frames from the connections' read loops to their
// session actors. A read loop only appends to a queue under a mutex; a
// drainer goroutine, started when a queue turns non-empty and ended when it
// is empty again, decodes each frame and sends it to its session.
//
// Why not decode and send on the read loop: every connection has a read
// loop, parked in a read most of its life, and its stack only grows. A
// protoactor send and the JSON decoder are deep enough to double a read
// loop's stack from 2 to 4 KiB, for good, after its first message; with the
// work here the stack of a connection stays at 2 KiB whatever it sent.
//
// Each connection is bound to one shard, and one drainer runs per shard, so
// a connection's frames reach its session in the order they were read. The
// end of a socket goes through the same queue, behind its last frames.
//
// Backpressure: a connection may have at most connLimit bytes of frames
// waiting here. Past that its read loop waits until the drainer has taken
// them, so a client that floods faster than its frames are decoded is
// slowed down by TCP, as when the read loop decoded itself, instead of
// growing the queue; other connections of the shard are not held up.
type inbox struct {
	node      port.Node
	log       *slog.Logger
	shards    []inboxShard
	connLimit int
	deliver   func(*inboxItem) // in.handOff; tests replace it
}

type inboxShard struct {
	mu      sync.Mutex
	wake    sync.Cond   // signalled when a batch is done and readers wait
	waiting int         // read loops waiting for their connection's bytes to drain
	queue   []inboxItem // guarded by mu
	spare   []inboxItem // the drainer's previous batch, reused
	running bool        // a drainer owns the queue; guarded by mu
	_       [64]byte    // keeps shards on separate cache lines
}

// inboxItem is a frame (msg) or the socket's end (msg == nil).
type inboxItem struct {
	st      *socketState
	session port.SessionHandle
	msg     *gws.Message
	err     error
	n       int // bytes the frame counts against st.inboxBytes
}

// inboxConnLimit is a connection's budget of frames waiting in the inbox:
// sixteen frames of the default maximum size, thousands of typical ones.
const inboxConnLimit = 1 << 20

func newInbox(node port.Node, log *slog.Logger) *inbox {
	in := &inbox{node: node, log: log, shards: make([]inboxShard, 2*runtime.GOMAXPROCS(0)), connLimit: inboxConnLimit}
	for i := range in.shards {
		in.shards[i].wake.L = &in.shards[i].mu
	}
	in.deliver = in.handOff
	return in
}

// shardFor picks the shard of a new connection, round robin.
func (in *inbox) shardFor(seq uint64) uint32 { return uint32(seq % uint64(len(in.shards))) }

// putFrame queues a frame of st's connection; ownership of m passes to the
// inbox. It waits while the connection is over its budget.
func (in *inbox) putFrame(st *socketState, session port.SessionHandle, m *gws.Message) {
	sh := &in.shards[st.shard]
	n := m.Data.Len()
	sh.mu.Lock()
	for st.inboxBytes > 0 && st.inboxBytes+n > in.connLimit {
		sh.waiting++
		sh.wake.Wait()
		sh.waiting--
	}
	st.inboxBytes += n
	in.appendLocked(sh, inboxItem{st: st, session: session, msg: m, n: n})
}

// putEnd queues the end of st's connection, behind its frames. It never
// waits.
func (in *inbox) putEnd(st *socketState, session port.SessionHandle, err error) {
	sh := &in.shards[st.shard]
	sh.mu.Lock()
	in.appendLocked(sh, inboxItem{st: st, session: session, err: err})
}

// appendLocked appends it, starts a drainer if none runs, and unlocks.
func (in *inbox) appendLocked(sh *inboxShard, it inboxItem) {
	sh.queue = append(sh.queue, it)
	start := !sh.running
	sh.running = true
	sh.mu.Unlock()
	if start {
		go in.drain(sh)
	}
}

// handOff hands one item to its session. A panic (a decoder bug: gws's
// Recovery does not cover the drainer) costs that frame only, as it did
// when decoding ran under gws.
func (in *inbox) handOff(it *inboxItem) {
	defer func() {
		if r := recover(); r != nil {
			in.log.Error("panic while decoding a client frame", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if it.msg == nil {
		in.node.Deliver(it.session, &port.SocketClosed{Err: it.err})
		return
	}
	// DecodeCommand copies what it keeps, so the pooled buffer can go back.
	defer it.msg.Close()
	in.node.Deliver(it.session, wire.DecodeCommand(it.msg.Bytes()))
}

func (in *inbox) drain(sh *inboxShard) {
	for {
		sh.mu.Lock()
		batch := sh.queue
		if len(batch) == 0 {
			sh.running = false
			sh.mu.Unlock()
			return
		}
		sh.queue = sh.spare[:0]
		sh.mu.Unlock()
		for i := range batch {
			in.deliver(&batch[i])
		}
		sh.mu.Lock()
		for i := range batch {
			batch[i].st.inboxBytes -= batch[i].n
			batch[i] = inboxItem{}
		}
		if sh.waiting > 0 {
			sh.wake.Broadcast()
		}
		sh.spare = batch[:0]
		sh.mu.Unlock()
	}
}
