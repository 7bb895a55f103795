package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors"
)

// outbox is the node's publishing side: a bounded FIFO of commands (publishes,
// direct-message scripts, presence updates) drained by one writer goroutine.
// Every command leaves on one connection in the order it was queued, so each
// sender's messages keep their order; when several wait, one pipelined round
// trip carries up to MaxBatch of them.
//
// The writer holds the queue (nothing is lost, nothing is reordered) while:
//   - a round trip failed: it retries with backoff, on a fresh connection;
//   - this node's pub/sub connections are not all up: a fault that took them
//     down has most likely taken the other nodes' down too (a Redis restart,
//     CLIENT KILL TYPE pubsub), and what is published before they are back is
//     heard by nobody;
//   - after such a recovery, until the channels it is about to publish on
//     have as many subscribers as they had before the fault (PUBSUB NUMSUB),
//     and the nodes it may send direct messages to are registered again, or
//     FlushWait has passed.
//
// A publish that Redis confirms but delivers to nobody, on a channel that had
// an audience, is the trace of a fault the node has not noticed yet (its
// subscriber connections were killed an instant ago). The writer then asks
// Redis whether this node's own probe channels still have their subscriber;
// if not, the publish is put back at the head of the queue and sent again
// after the recovery. Nobody heard it the first time, so nobody hears it
// twice.
type outbox struct {
	r          *Redis
	limit      int
	maxBatch   int
	directWait time.Duration // BrokerHost.DirectWait: a direct message that waits longer is given up

	mu      sync.Mutex          // guards the fields up to closed
	items   []outItem           // the queue is items[head:]
	head    int                 //
	sending int                 // items[head:head+sending] are in flight with the writer
	local   map[string]struct{} // users with a local session: what a resync writes
	resync  bool                // a resync is queued
	seq     uint64              // msg_id sequence of the last publish queued
	closed  bool                // Close began: refuse new publishes
	// expireAt is when a queued direct message may be due to be given up
	// (expireDirects); zero when none is queued. It may be early, never late.
	expireAt time.Time

	wake    chan struct{} // capacity 1: something changed, look again
	quit    chan struct{} // closed by close: flush, then exit
	exited  chan struct{} // closed when the writer has returned
	failing atomic.Bool   // the last round trip failed; written by the writer, read by State

	// Owned by the writer goroutine.
	client     *redis.Client
	scripts    bool             // the scripts are loaded on client
	receivers  map[string]int64 // channel -> subscribers that heard its last publish
	failures   int              // round trips failed in a row
	retryAt    time.Time
	epoch      uint64              // the connections' recovery epoch the fields below are about
	since      time.Time           // when that recovery happened
	peers      []string            // the other nodes alive before it
	verified   map[string]struct{} // channels seen with their audience back since
	peersBack  bool                // the peers are registered again since
	held       bool                // a command had to wait for its audience
	windowOver bool                // FlushWait has passed since: no more checks
	holdEpoch  uint64              // hold the queue until a recovery newer than this
	holding    bool
	wasUp      bool       // the connections were all up at the last step
	seenEpoch  uint64     // the recovery epoch at the last step
	resentDown bool       // resendRecent ran for the current outage
	recent     []sentItem // publishes confirmed within ResendWindow, oldest first
	batch      []outItem
	status     []itemStatus
}

type outKind uint8

const (
	outPublish outKind = iota
	outDirect
	outOnline
	outOffline
	outResync
	outReapSelf // run the reap script on this node's own entries (at start and at close)
)

// outItem is one queued command. Immutable once queued, except resent,
// which only the writer touches.
type outItem struct {
	kind     outKind
	channel  string           // publish: the channel
	user     string           // direct, online, offline: the user
	data     []byte           // publish, direct: the envelope
	done     func(int, error) // direct: called by the writer with the result (see answer)
	resent   bool             // heard by nobody once and queued again
	announce bool             // resync: also publish user_connected for every local user
	deadline time.Time        // direct: given up (unavailable) if still queued then; zero: never
	unsure   bool             // put back after a round trip that may have run it: never given up
}

// answer reports a direct message's result to its sender, once: an item
// sent again after a fault has no one left to answer.
func (it *outItem) answer(nodes int, err error) {
	if it.done != nil {
		it.done(nodes, err)
	}
}

// sentItem is a confirmed publish or direct message, kept for ResendWindow.
type sentItem struct {
	it outItem
	at time.Time
}

// maxRecent bounds the confirmed publishes kept for a resend.
const maxRecent = 8192

type itemStatus uint8

const (
	itemDone    itemStatus = iota // completed; its done (if any) called
	itemRetry                     // send again (network error, or script not loaded)
	itemSuspect                   // heard by nobody; see outbox
)

// maxReceivers bounds the channels whose last audience the writer remembers.
const maxReceivers = 10000

func newOutbox(r *Redis) *outbox {
	return &outbox{
		r: r, limit: r.cfg.OutboxLimit, maxBatch: r.cfg.MaxBatch, directWait: r.host.DirectWait,
		// First of all, clear what a previous incarnation of this node id
		// left in the presence directory.
		items: []outItem{{kind: outReapSelf}},
		local: make(map[string]struct{}), receivers: make(map[string]int64),
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

func (o *outbox) push(it outItem, bounded bool) bool {
	o.mu.Lock()
	if o.closed || bounded && len(o.items)-o.head >= o.limit {
		o.mu.Unlock()
		return false
	}
	if it.kind == outPublish || it.kind == outDirect {
		// Numbered under the lock: sequence order is queue order, which
		// is the order every subscriber receives one channel's messages in.
		o.seq++
		it.data = withMsgID(it.data, o.r.keys.msgID, o.seq)
	}
	if !it.deadline.IsZero() && (o.expireAt.IsZero() || it.deadline.Before(o.expireAt)) {
		o.expireAt = it.deadline
	}
	o.items = append(o.items, it)
	o.mu.Unlock()
	o.signal()
	return true
}

// publish queues data for channel; actors.ErrUnavailable when the outbox is
// full. Any goroutine.
func (o *outbox) publish(channel string, data []byte) error {
	if !o.push(outItem{kind: outPublish, channel: channel, data: data}, true) {
		o.r.stats.refused.Add(1)
		return actors.ErrUnavailable
	}
	return nil
}

// direct queues a direct message for user. Any goroutine.
func (o *outbox) direct(user string, data []byte, done func(int, error)) {
	it := outItem{kind: outDirect, user: user, data: data, done: done}
	if o.directWait > 0 {
		it.deadline = time.Now().Add(o.directWait)
	}
	if !o.push(it, true) {
		o.r.stats.refused.Add(1)
		done(0, actors.ErrUnavailable)
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
	o.items = append(o.items, outItem{kind: kind, user: user})
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
	o.items = append(o.items, outItem{kind: outReapSelf})
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

// run is the writer goroutine.
func (o *outbox) run() {
	defer close(o.exited)
	defer o.finish()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		wait, more := o.step()
		if !more {
			return
		}
		if d, ok := o.untilExpiry(); ok && (wait < 0 || d < wait) {
			wait = max(d, 0)
		}
		if wait == 0 {
			continue
		}
		var tc <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		quit := o.quit
		if o.quitting() {
			quit = nil // seen already; step decides what it means
		}
		select {
		case <-o.wake:
		case <-tc:
		case <-quit:
		case <-o.r.ctx.Done():
			return
		}
		if wait > 0 && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// step does one unit of work. It returns how long to wait before the next
// (0: go on, negative: until signalled) and false when the writer is done.
func (o *outbox) step() (time.Duration, bool) {
	o.expireDirects(time.Now())
	quitting := o.quitting()
	if o.len() == 0 {
		if quitting {
			return 0, false
		}
		if o.failing.Load() {
			return o.ping(), true
		}
		return -1, true
	}
	up, epoch := o.r.health.allUp()
	switch {
	case o.wasUp && !up:
		// The connections just went down.
		o.resendRecent()
		o.resentDown = true
	case epoch != o.seenEpoch:
		// They went down and up again while the writer was busy (a round
		// trip, a backoff): the fault was not seen above.
		if !o.resentDown {
			o.resendRecent()
		}
		o.resentDown = false
	}
	o.wasUp, o.seenEpoch = up, epoch
	if !up || o.holding && epoch <= o.holdEpoch {
		if quitting {
			return 0, false // Redis is not there to flush to
		}
		return -1, true // a connection coming up signals
	}
	o.holding = false
	if wait := time.Until(o.retryAt); wait > 0 {
		if quitting && o.failures > 2 {
			return 0, false
		}
		return wait, true
	}
	if epoch != o.epoch {
		o.epoch, o.since, o.peers = epoch, time.Now(), o.r.pres.peers()
		o.verified, o.peersBack, o.held = make(map[string]struct{}), false, false
		// At start there is no audience to wait for.
		o.windowOver = epoch == 1
	}
	n, wait := o.sendable()
	if n == 0 {
		return wait, true
	}
	o.send(n)
	return 0, true
}

// conn returns the writer's client, creating one after a failure.
func (o *outbox) conn() *redis.Client {
	if o.client == nil {
		o.client = o.r.newClient("pub")
		o.scripts = false
	}
	return o.client
}

// failed records a failed round trip: the next attempt waits a backoff and
// uses a fresh connection.
func (o *outbox) failed(err error) {
	o.r.stats.sendFailures.Add(1)
	o.failures++
	o.retryAt = time.Now().Add(backoff(o.failures, o.r.cfg.ReconnectMin, o.r.cfg.ReconnectMax))
	if !o.failing.Swap(true) {
		o.r.log.Warn("redis publish failing; holding the outbox", actors.KeyErr, err)
	}
	if o.client != nil {
		_ = o.client.Close()
		o.client = nil
	}
}

func (o *outbox) succeeded() {
	o.failures = 0
	if o.failing.Swap(false) {
		o.r.log.Info("redis publish recovered", "outbox", o.len())
	}
}

// ping checks a failing connection while there is nothing to send, so that
// State recovers without traffic.
func (o *outbox) ping() time.Duration {
	if wait := time.Until(o.retryAt); wait > 0 {
		return wait
	}
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	if err := o.conn().Ping(ctx).Err(); err != nil {
		o.failed(err)
		return time.Until(o.retryAt)
	}
	o.succeeded()
	return 0
}

// sendable returns how many commands at the head of the queue may leave
// now (at most MaxBatch), or 0 and how long to wait. After a recovery of
// this node's connections, the other nodes' subscriptions may not be back
// yet, and what is published before they are is lost to them. So a publish
// leaves only once its channel has, again, at least as many subscribers as
// heard its last publish before (PUBSUB NUMSUB), and a direct message only
// once the nodes alive before are registered again; FlushWait after the
// recovery, everything leaves (a node may have died meanwhile). Presence
// updates need no listener and always leave. Order is kept: the first
// command that must wait holds those behind it.
func (o *outbox) sendable() (int, time.Duration) {
	o.mu.Lock()
	head := o.items[o.head:min(len(o.items), o.head+o.maxBatch)]
	var chans []string
	var want []int64
	directs := false
	for _, it := range head {
		switch it.kind {
		case outPublish:
			if _, ok := o.verified[it.channel]; !ok && o.receivers[it.channel] > 0 && !slices.Contains(chans, it.channel) && len(chans) < 256 {
				chans, want = append(chans, it.channel), append(want, o.receivers[it.channel])
			}
		case outDirect:
			directs = directs || !o.peersBack && len(o.peers) > 0
		}
	}
	o.mu.Unlock()
	if len(chans) == 0 && !directs || o.windowOver {
		return len(head), 0
	}
	if time.Since(o.since) > o.r.cfg.FlushWait {
		o.windowOver = true
		if o.held {
			o.r.stats.flushTimeouts.Add(1)
			o.r.log.Warn("redis: other nodes' subscriptions not back in time; sending anyway", "after", o.r.cfg.FlushWait)
		}
		return len(head), 0
	}
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	pipe := o.conn().Pipeline()
	var numsub *redis.MapStringIntCmd
	var exists *redis.IntCmd
	if len(chans) > 0 {
		numsub = pipe.PubSubNumSub(ctx, chans...)
	}
	if directs {
		keys := make([]string, len(o.peers))
		for i, p := range o.peers {
			keys[i] = o.r.keys.prefix + ":presence:alive:" + p
		}
		exists = pipe.Exists(ctx, keys...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		o.failed(err)
		return 0, time.Until(o.retryAt)
	}
	o.succeeded()
	if numsub != nil {
		got := numsub.Val()
		for i, ch := range chans {
			if got[ch] >= want[i] {
				o.verified[ch] = struct{}{}
			}
		}
	}
	if exists != nil && exists.Val() >= int64(len(o.peers)) {
		o.peersBack = true
	}
	// A resync may have been inserted at the head meanwhile: scan again,
	// under the lock. (An insertion after this only shifts a prefix that is
	// all sendable.)
	o.mu.Lock()
	head = o.items[o.head:min(len(o.items), o.head+o.maxBatch)]
	n := 0
	for _, it := range head {
		if it.kind == outPublish && o.receivers[it.channel] > 0 {
			if _, ok := o.verified[it.channel]; !ok {
				break
			}
		}
		if it.kind == outDirect && !o.peersBack && len(o.peers) > 0 {
			break
		}
		n++
	}
	o.mu.Unlock()
	if n == 0 {
		o.held = true
		return 0, 20 * time.Millisecond
	}
	return n, 0
}

// itemCmds is the range of pipeline commands an item produced.
type itemCmds struct{ from, to int }

// send takes n commands from the head of the queue, sends them in one round
// trip and completes, retries or holds each.
func (o *outbox) send(n int) {
	o.mu.Lock()
	o.batch = append(o.batch[:0], o.items[o.head:o.head+n]...)
	o.sending = n
	var users []string
	for _, it := range o.batch {
		if it.kind == outResync {
			users = make([]string, 0, len(o.local))
			for u := range o.local {
				users = append(users, u)
			}
			o.resync = false
		}
	}
	o.mu.Unlock()

	_, epoch := o.r.health.allUp()
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	client := o.conn()
	if !o.scripts && slices.ContainsFunc(o.batch, func(it outItem) bool { return it.kind == outDirect || it.kind == outReapSelf }) {
		if err := loadScripts(ctx, client); err != nil {
			o.failed(err)
			o.complete(nil)
			return
		}
		o.scripts = true
	}
	// One transaction: every command of the batch sees the same
	// subscribers. A fault then falls between two batches, never inside
	// one, so a later message of a channel cannot be heard where an earlier
	// one was not (msg_id deduplication relies on it).
	pipe := client.TxPipeline()
	spans := make([]itemCmds, len(o.batch))
	for i := range o.batch {
		from := pipe.Len()
		o.queue(ctx, pipe, &o.batch[i], users)
		spans[i] = itemCmds{from: from, to: pipe.Len()}
	}
	cmds, _ := pipe.Exec(ctx)
	o.r.stats.roundTrips.Add(1)

	o.status = o.status[:0]
	var netErr error
	suspects := 0
	for i := range o.batch {
		it := &o.batch[i]
		st := itemRetry
		if netErr == nil {
			if err := networkError(cmds[spans[i].from:spans[i].to]); err != nil {
				netErr = err
			} else {
				st = o.result(it, cmds[spans[i].from:spans[i].to])
			}
		}
		if st == itemSuspect {
			suspects++
		}
		o.status = append(o.status, st)
	}
	if netErr != nil {
		o.failed(netErr)
		// Redis may have run the batch before the connection failed: its
		// direct messages are sent again (receivers drop copies), never
		// given up.
		for i := range o.batch {
			o.batch[i].unsure = true
		}
	} else {
		o.succeeded()
	}
	if suspects > 0 {
		o.checkSuspects(ctx, epoch)
	}
	o.complete(o.status)
}

// queue adds the item's commands to pipe.
func (o *outbox) queue(ctx context.Context, pipe redis.Pipeliner, it *outItem, users []string) {
	k := &o.r.keys
	switch it.kind {
	case outPublish:
		pipe.Publish(ctx, it.channel, it.data)
	case outDirect:
		pipe.EvalSha(ctx, directScript.Hash(), []string{k.userKey(it.user)}, k.prefix, k.node, it.data)
	case outOnline:
		pipe.SAdd(ctx, k.nodeUsers, it.user)
		pipe.SAdd(ctx, k.userKey(it.user), k.node)
	case outOffline:
		pipe.SRem(ctx, k.nodeUsers, it.user)
		pipe.SRem(ctx, k.userKey(it.user), k.node)
	case outReapSelf:
		pipe.EvalSha(ctx, reapScript.Hash(), []string{k.nodes}, k.prefix, o.r.cfg.PresenceTTL.Milliseconds(), k.node)
	case outResync:
		pipe.Del(ctx, k.nodeUsers)
		for chunk := range slices.Chunk(users, 1000) {
			args := make([]any, len(chunk))
			for i, u := range chunk {
				args[i] = u
			}
			pipe.SAdd(ctx, k.nodeUsers, args...)
		}
		for _, u := range users {
			pipe.SAdd(ctx, k.userKey(u), k.node)
		}
		pipe.SAdd(ctx, k.nodes, k.node)
		pipe.Set(ctx, k.alive, "1", o.r.cfg.PresenceTTL)
		if it.announce {
			pipe.Del(ctx, k.reaped)
			for _, u := range users {
				ev := actors.PresenceEvent("user_connected", u)
				env := &actors.Envelope{Type: actors.EnvBroadcast, SenderID: u, Node: k.node, Payload: ev.JSON}
				pipe.Publish(ctx, k.broadcast, env.Encode())
			}
		}
	}
}

// networkError returns the first error among cmds that is not a reply from
// Redis: the connection failed and the command's fate is unknown.
func networkError(cmds []redis.Cmder) error {
	for _, c := range cmds {
		err := c.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			continue
		}
		var reply redis.Error
		if !errors.As(err, &reply) {
			return err
		}
	}
	return nil
}

// result interprets the replies of one item that reached Redis.
func (o *outbox) result(it *outItem, cmds []redis.Cmder) itemStatus {
	switch it.kind {
	case outPublish:
		n, err := cmds[0].(*redis.IntCmd).Result()
		if err != nil {
			o.r.log.Warn("redis refused a publish", "channel", it.channel, actors.KeyErr, err)
			return itemDone
		}
		if n == 0 && o.receivers[it.channel] > 0 && !it.resent {
			return itemSuspect
		}
		o.r.stats.published.Add(1)
		o.noteReceivers(it.channel, n)
	case outDirect:
		res, err := cmds[0].(*redis.Cmd).Int64Slice()
		switch {
		case redis.HasErrorPrefix(err, "NOSCRIPT"):
			o.scripts = false
			return itemRetry
		case err != nil || len(res) != 2:
			o.r.log.Warn("redis direct-message script failed", actors.KeyErr, err)
			it.answer(0, actors.ErrUnavailable)
		case res[0] == 0 && res[1] > 0 && !it.resent:
			return itemSuspect

		default:
			o.r.stats.directs.Add(1)
			if res[0] == 0 && res[1] > 0 {
				it.answer(0, actors.ErrUnavailable) // its nodes are there but not listening
			} else {
				it.answer(int(res[0]), nil)
			}
		}
	case outReapSelf:
		if redis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
			o.scripts = false
			return itemRetry
		}
		if err := cmds[0].Err(); err != nil {
			o.r.log.Warn("redis presence cleanup failed", actors.KeyErr, err)
		}
	case outResync:
		o.r.stats.resyncs.Add(1)
		fallthrough
	default:
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				o.r.log.Warn("redis presence update failed", actors.KeyErr, err)
				break
			}
		}
	}
	return itemDone
}

func (o *outbox) noteReceivers(channel string, n int64) {
	if _, ok := o.receivers[channel]; !ok && len(o.receivers) >= maxReceivers {
		for ch := range o.receivers {
			delete(o.receivers, ch)
			break
		}
	}
	o.receivers[channel] = n
}

// checkSuspects decides what publishes heard by nobody mean: if this
// node's probe channels still have their subscriber, and its connections
// have not gone down and up since the batch was sent (epoch), the channels
// simply had no audience left, and they are done; if not, this node's
// subscriptions were gone (and very likely everyone's): they are sent again
// after the recovery.
func (o *outbox) checkSuspects(ctx context.Context, epoch uint64) {
	intact := false
	if up, now := o.r.health.allUp(); up && now == epoch && !o.failing.Load() {
		pipe := o.conn().Pipeline()
		counts := make([]*redis.IntCmd, o.r.cfg.PubSubConnections)
		for i := range counts {
			counts[i] = pipe.Publish(ctx, o.r.keys.probeChannel(i), "check")
		}
		if _, err := pipe.Exec(ctx); err == nil {
			intact = true
			for _, c := range counts {
				if c.Val() < 1 {
					intact = false
				}
			}
		}
	}
	if !intact {
		// Hold the queue until a recovery later than the batch: at once if
		// it already happened.
		o.holding, o.holdEpoch = true, epoch
		o.r.host.Root.Send(o.r.bus, probeNow{})
	}
	for i, st := range o.status {
		if st != itemSuspect {
			continue
		}
		it := &o.batch[i]
		if !intact {
			it.resent = true
			o.r.stats.resent.Add(1)
			o.status[i] = itemRetry
			continue
		}
		o.status[i] = itemDone
		switch it.kind {
		case outPublish:
			o.r.stats.published.Add(1)
			o.receivers[it.channel] = 0
		case outDirect:
			o.r.stats.directs.Add(1)
			it.answer(0, actors.ErrUnavailable)
		}
	}
}

// complete removes the batch from the head of the queue and puts back, in
// their order, the items to send again. status nil means: retry them all.
func (o *outbox) complete(status []itemStatus) {
	var retry []outItem
	now := time.Now()
	for i, it := range o.batch {
		switch {
		case status == nil || status[i] == itemRetry:
			retry = append(retry, it)
		case it.kind == outPublish || it.kind == outDirect:
			o.recent = append(o.recent, sentItem{it: it, at: now})
		}
	}
	o.trimRecent(now)
	o.mu.Lock()
	oldHead := o.head
	o.head += len(o.batch) - len(retry)
	clear(o.items[oldHead:o.head])
	copy(o.items[o.head:], retry)
	o.sending = 0
	for _, it := range retry {
		if it.kind == outResync {
			o.resync = true
		}
	}
	switch {
	case o.head == len(o.items):
		clear(o.items)
		o.items, o.head = o.items[:0], 0
	case o.head > cap(o.items)/2:
		n := copy(o.items, o.items[o.head:])
		clear(o.items[n:])
		o.items, o.head = o.items[:n], 0
	}
	o.mu.Unlock()
	clear(o.batch)
}

// trimRecent forgets the confirmed publishes older than ResendWindow.
func (o *outbox) trimRecent(now time.Time) {
	cut := 0
	for cut < len(o.recent) && (now.Sub(o.recent[cut].at) > o.r.cfg.ResendWindow || len(o.recent)-cut > maxRecent) {
		cut++
	}
	if cut > 0 {
		n := copy(o.recent, o.recent[cut:])
		clear(o.recent[n:])
		o.recent = o.recent[:n]
	}
}

// resendRecent runs when the writer first sees this node's connections down:
// the publishes confirmed during ResendWindow before may not have reached
// subscribers that Redis closed meanwhile (see redis_msgid.go). They go back
// to the head of the queue, in order, ahead of everything queued since, and
// leave again after the recovery; subscribers that had them drop the copies.
// Their senders were answered already: a direct message is not answered
// twice.
func (o *outbox) resendRecent() {
	o.trimRecent(time.Now())
	if len(o.recent) == 0 {
		return
	}
	again := make([]outItem, len(o.recent))
	for i, s := range o.recent {
		again[i] = s.it
		again[i].resent, again[i].done, again[i].deadline = true, nil, time.Time{}
	}
	clear(o.recent)
	o.recent = o.recent[:0]
	o.r.stats.resent.Add(int64(len(again)))
	o.mu.Lock()
	o.items = slices.Insert(o.items, o.head+o.sending, again...)
	o.mu.Unlock()
}

// finish runs when the writer returns: queued direct messages are refused,
// the connection released.
func (o *outbox) finish() {
	o.mu.Lock()
	left := slices.Clone(o.items[o.head:])
	o.mu.Unlock()
	for _, it := range left {
		if it.kind == outDirect {
			it.answer(0, actors.ErrUnavailable)
		}
	}
	if o.client != nil {
		_ = o.client.Close()
		o.client = nil
	}
}

// untilExpiry returns how long until a queued direct message may be due to
// be given up, and false when none is queued.
func (o *outbox) untilExpiry() (time.Duration, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.expireAt.IsZero() {
		return 0, false
	}
	return time.Until(o.expireAt), true
}

// expireDirects gives up the direct messages that have waited in the
// queue past their deadline (Redis down, or the outbox holding after a
// recovery): each sender is answered unavailable, and the message is not
// sent later, so that the client that was told unavailable may send it
// again without it arriving twice. Messages whose earlier round trip may
// have run (unsure) are kept: they are sent again and deduplicated. It
// runs on the writer goroutine, between round trips.
func (o *outbox) expireDirects(now time.Time) {
	o.mu.Lock()
	if o.expireAt.IsZero() || now.Before(o.expireAt) {
		o.mu.Unlock()
		return
	}
	var late []outItem
	var next time.Time
	w := o.head + o.sending
	for _, it := range o.items[w:] {
		if it.kind == outDirect && it.done != nil && !it.unsure && !it.deadline.IsZero() {
			if !now.Before(it.deadline) {
				late = append(late, it)
				continue
			}
			if next.IsZero() || it.deadline.Before(next) {
				next = it.deadline
			}
		}
		o.items[w] = it
		w++
	}
	clear(o.items[w:])
	o.items = o.items[:w]
	o.expireAt = next
	o.mu.Unlock()
	o.r.stats.expired.Add(int64(len(late)))
	for i := range late {
		late[i].answer(0, actors.ErrUnavailable)
	}
}
