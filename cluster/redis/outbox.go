package redis

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// outbox is the node's publishing side: a bounded FIFO of commands (publishes,
// direct-message scripts, presence updates) drained by one writer goroutine.
// Every command leaves on one connection in the order it was queued, so each
// sender's messages keep their order; when several wait, one pipelined round
// trip carries up to MaxBatch of them.
//
// The writer holds the queue (nothing is lost, nothing is reordered) while a
// round trip failed (it retries with backoff, on a fresh connection), and
// while what it sends may not be heard: this node's pub/sub connections are
// down, or have just come back and the other nodes' may not have. Its state
// machine, gate (outbox_state.go), decides; its doc has the table of states.
//
// A publish that Redis confirms but delivers to nobody, on a channel that had
// an audience, is the trace of a fault the node has not noticed yet (its
// subscriber connections were killed an instant ago). The writer then asks
// Redis whether this node's own probe channels still have their subscriber;
// if not, the publish is put back at the head of the queue and sent again
// after the recovery. Nobody heard it the first time, so nobody hears it
// twice.
type outbox struct {
	r          *Broker
	limit      int
	maxBatch   int
	directWait time.Duration // BrokerHost.DirectWait: a direct message that waits longer is given up

	mu      sync.Mutex          // guards the fields up to closed
	items   []outItem           // the queue is items[head:]
	head    int                 //
	sending int                 // items[head:head+sending] are in flight with the writer
	local   map[string]struct{} // users with a local session: what a resync writes
	// rooms are the node's presence shares: (room, user) -> member
	// connections here; roomUsers counts each room's users. Flat rather
	// than a map per room: a node in 100,000 rooms of one member each
	// held a map for each (~0.3 KiB).
	rooms     map[roomUser]int
	roomUsers map[string]int
	resync    bool   // a resync is queued
	seq       uint64 // msg_id sequence of the last publish queued
	closed    bool   // Close began: refuse new publishes
	// expireAt is when a queued direct message may be due to be given up
	// (expireDirects); zero when none is queued. It may be early, never late.
	expireAt time.Time

	wake    chan struct{} // capacity 1: something changed, look again
	quit    chan struct{} // closed by close: flush, then exit
	exited  chan struct{} // closed when the writer has returned
	failing atomic.Bool   // the last round trip failed; written by the writer, read by State

	// Owned by the writer goroutine.
	client    goredis.UniversalClient
	scripts   bool             // the scripts are loaded on client
	receivers map[string]int64 // channel -> subscribers that heard its last publish
	// unsettled: this node's connections went down or came back since the
	// gate's last reading, by the end of the round trip being read. A
	// smaller audience heard then is not remembered: it may be this node
	// back first and the others still resubscribing (a slot that moved
	// unsubscribes every node at once), and the recovery's check
	// (sendable) would then wait for that smaller audience only.
	unsettled bool
	failures  int        // round trips failed in a row
	retryAt   time.Time  // no round trip before this, after a failure
	gate      gate       // the recovery state (outbox_state.go)
	recent    []sentItem // publishes confirmed within ResendWindow, oldest first
	batch     []outItem
	status    []itemStatus
}

type outKind uint8

const (
	outPublish outKind = iota
	outDirect
	outOnline
	outOffline
	outResync
	outReapSelf   // run the reap script on this node's own entries (at start and at close)
	outAppend     // number, store and publish a room publication (stream.go)
	outRoomMember // write a user's count in this node's share of a room's presence (roompresence.go)
)

// outItem is one queued command. Immutable once queued, except resent,
// which only the writer touches. A mass exit queues hundreds of thousands
// of them at once (a leave event and a presence count per room), so the
// fields are ordered to pack and an append keeps only the part of its
// template that varies: 128 bytes an item.
type outItem struct {
	kind     outKind
	resent   bool             // heard by nobody once and queued again
	announce bool             // resync: also publish user_connected for every local user
	unsure   bool             // put back after a round trip that may have run it: never given up
	channel  string           // publish: the channel
	user     string           // direct, online, offline: the user
	data     []byte           // publish, direct: the envelope
	done     func(int, error) // direct: called by the writer with the result (see answer)
	deadline time.Time        // direct: given up (unavailable) if still queued then; zero: never
	// append: what follows the position in the envelope as the stream
	// script publishes it (the last part of wire.StreamTemplate), its
	// msg_id sequence, and who waits for its position.
	rest     string
	seq      uint64
	appended func(wire.Position, error)
}

// roomUser keys the node's presence shares (outbox.rooms).
type roomUser struct{ room, user string }

// add appends it to the queue; o.mu held. The queue doubles when full:
// append's growth of a large slice by a quarter would copy a backlog of
// n items about 5n times while it builds up.
func (o *outbox) add(it outItem) {
	if len(o.items) == cap(o.items) {
		grown := make([]outItem, len(o.items), max(64, 2*cap(o.items)))
		copy(grown, o.items)
		o.items = grown
	}
	o.items = append(o.items, it)
}

// answer reports a direct message's result to its sender, once: an item
// sent again after a fault has no one left to answer.
func (it *outItem) answer(nodes int, err error) {
	if it.done != nil {
		it.done(nodes, err)
	}
}

func newOutbox(r *Broker) *outbox {
	return &outbox{
		r: r, limit: r.cfg.OutboxLimit, maxBatch: r.cfg.MaxBatch, directWait: r.host.DirectWait,
		// First of all, clear what a previous incarnation of this node id
		// left in the presence directory.
		items: []outItem{{kind: outReapSelf}},
		local: make(map[string]struct{}), rooms: make(map[roomUser]int), roomUsers: make(map[string]int), receivers: make(map[string]int64),
		wake: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{}),
	}
}

// signal wakes the writer. Any goroutine; never blocks.
func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// len is the number of queued commands, in flight included.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items) - o.head
}

// push queues it; env, when not nil, is the envelope of a publish or a
// direct message, numbered and encoded here into it.data.
// push queues it unless the queue already holds max commands.
func (o *outbox) push(it outItem, env *wire.Envelope, max int) bool {
	o.mu.Lock()
	if o.closed || len(o.items)-o.head >= max {
		o.mu.Unlock()
		return false
	}
	if env != nil {
		// Numbered under the lock: sequence order is queue order, which
		// is the order every subscriber receives one channel's messages in.
		// The envelope is encoded once, with its id: resends send the
		// same bytes.
		o.seq++
		env.MsgID = wire.MsgID{Origin: o.r.keys.origin, Seq: o.seq}
		it.data = o.r.keys.framed(it.channel, env.Encode())
	}
	if !it.deadline.IsZero() && (o.expireAt.IsZero() || it.deadline.Before(o.expireAt)) {
		o.expireAt = it.deadline
	}
	o.add(it)
	o.mu.Unlock()
	o.signal()
	return true
}

// publish queues env for channel; port.ErrUnavailable when the outbox is
// full. Any goroutine.
func (o *outbox) publish(channel string, env *wire.Envelope) error {
	if !o.push(outItem{kind: outPublish, channel: channel}, env, o.limit) {
		o.r.stats.refused.Add(1)
		return port.ErrUnavailable
	}
	return nil
}

// presenceSlack is how far past the limit presence publishes may fill the
// queue, as a multiple of the limit (see publishPresence).
const presenceSlack = 20

// publishPresence queues a membership event the node generated itself
// (user_joined, user_left, user_connected, user_disconnected). There is at
// most one per join, leave, connect and disconnect, and nobody to refuse
// one to: refused, it would be lost for every member on the other nodes.
// So it may fill the queue presenceSlack times past the limit that bounds
// clients' publishes: when 1,000 connections in 100 rooms each leave at
// once, their 100,000 user_left leave in about a second, while clients'
// publishes meanwhile get unavailable. Past that (a node whose Redis has
// been away through churn of that size) it is refused and counted. Any
// goroutine.
func (o *outbox) publishPresence(channel string, env *wire.Envelope) error {
	if !o.push(outItem{kind: outPublish, channel: channel}, env, o.limit*(1+presenceSlack)) {
		o.r.stats.refused.Add(1)
		return port.ErrUnavailable
	}
	return nil
}

// direct queues a direct message for user. Any goroutine.
func (o *outbox) direct(user string, env *wire.Envelope, done func(int, error)) {
	it := outItem{kind: outDirect, user: user, done: done}
	if o.directWait > 0 {
		it.deadline = time.Now().Add(o.directWait)
	}
	if !o.push(it, env, o.limit) {
		o.r.stats.refused.Add(1)
		done(0, port.ErrUnavailable)
	}
}

// presence records that user has (or no longer has) a local session and
// queues the directory update. Presence updates are not bounded by the
// limit: there is at most one per connect and disconnect, and dropping one
// would leave the directory wrong until the next resync. Any goroutine.
func (o *outbox) presence(user string, online bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	kind := outOffline
	if online {
		o.local[user] = struct{}{}
		kind = outOnline
	} else {
		delete(o.local, user)
	}
	o.add(outItem{kind: kind, user: user})
	o.mu.Unlock()
	o.signal()
}

// queueResync puts a rewrite of this node's presence entries ahead of every
// queued command that is not in flight yet. The entries are read from the
// local set when the command is sent, so commands queued behind it replay
// on top of a state that already includes them: they are idempotent.
func (o *outbox) queueResync(announce bool) {
	o.mu.Lock()
	if o.closed || o.resync {
		o.mu.Unlock()
		return
	}
	o.resync = true
	at := o.head + o.sending
	for at < len(o.items) && o.items[at].kind == outReapSelf {
		at++ // the start-up cleanup must run before entries are written
	}
	o.items = slices.Insert(o.items, at, outItem{kind: outResync, announce: announce})
	o.mu.Unlock()
	o.signal()
}

// close stops accepting publishes, queues the removal of this node from the
// presence directory, and waits until the writer has sent what it could
// (while Redis is reachable) and returned, or until ctx ends. It returns how
// many commands were left unsent.
func (o *outbox) close(ctx context.Context) int {
	o.mu.Lock()
	o.closed = true
	o.add(outItem{kind: outReapSelf})
	o.mu.Unlock()
	close(o.quit)
	select {
	case <-o.exited:
	case <-ctx.Done():
	}
	return o.len()
}

func (o *outbox) quitting() bool {
	select {
	case <-o.quit:
		return true
	default:
		return false
	}
}
