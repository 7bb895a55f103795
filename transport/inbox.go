package transport

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors"
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
type inbox struct {
	node   *actors.Node
	log    *slog.Logger
	shards []inboxShard
}

type inboxShard struct {
	mu      sync.Mutex
	queue   []inboxItem // guarded by mu
	spare   []inboxItem // the drainer's previous batch, reused
	running bool        // a drainer owns the queue; guarded by mu
	_       [64]byte    // keeps shards on separate cache lines
}

// inboxItem is a frame (msg) or the socket's end (msg == nil).
type inboxItem struct {
	pid *actor.PID
	msg *gws.Message
	err error
}

func newInbox(node *actors.Node, log *slog.Logger) *inbox {
	return &inbox{node: node, log: log, shards: make([]inboxShard, 2*runtime.GOMAXPROCS(0))}
}

// shardFor picks the shard of a new connection, round robin.
func (in *inbox) shardFor(seq uint64) uint32 { return uint32(seq % uint64(len(in.shards))) }

// put queues one item; ownership of msg passes to the inbox.
func (in *inbox) put(shard uint32, it inboxItem) {
	sh := &in.shards[shard]
	sh.mu.Lock()
	sh.queue = append(sh.queue, it)
	start := !sh.running
	sh.running = true
	sh.mu.Unlock()
	if start {
		go in.drain(sh)
	}
}

// deliver hands one item to its session. A panic (a decoder bug: gws's
// Recovery no longer covers decoding) costs that frame only, as it did
// when decoding ran under gws.
func (in *inbox) deliver(it *inboxItem) {
	defer func() {
		if r := recover(); r != nil {
			in.log.Error("panic while decoding a client frame", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if it.msg == nil {
		in.node.Send(it.pid, &actors.SocketClosed{Err: it.err})
		return
	}
	// DecodeCommand copies what it keeps, so the pooled buffer can go back.
	defer it.msg.Close()
	in.node.Send(it.pid, actors.DecodeCommand(it.msg.Bytes()))
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
			batch[i] = inboxItem{}
		}
		sh.mu.Lock()
		sh.spare = batch[:0]
		sh.mu.Unlock()
	}
}
