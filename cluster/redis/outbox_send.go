package redis

import (
	"context"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
)

type itemStatus uint8

const (
	itemDone    itemStatus = iota // completed; its done (if any) called
	itemRetry                     // send again (network error, or script not loaded)
	itemSuspect                   // heard by nobody; see outbox
)

// maxReceivers bounds the channels whose last audience the writer remembers.
const maxReceivers = 10000

// send takes n commands from the head of the queue, sends them in one round
// trip and completes, retries or holds each.
func (o *outbox) send(n int) {
	o.mu.Lock()
	if o.r.keys.cluster {
		// On a cluster, the reap of this node's own entries clears its
		// room shares after its script (cluster_presence.go): it goes
		// alone, so that it never clears shares written in its batch.
		for i, it := range o.items[o.head : o.head+n] {
			if it.kind == outReapSelf {
				n = max(i, 1)
				break
			}
		}
	}
	o.batch = append(o.batch[:0], o.items[o.head:o.head+n]...)
	o.sending = n
	var users []string
	var shares map[string]map[string]int
	for _, it := range o.batch {
		if it.kind == outResync {
			users = make([]string, 0, len(o.local))
			for u := range o.local {
				users = append(users, u)
			}
			shares = o.sharesSnapshot()
			o.resync = false
		}
	}
	o.mu.Unlock()

	_, epoch := o.r.health.allUp()
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	client := o.conn()
	if !o.scripts && slices.ContainsFunc(o.batch, func(it outItem) bool {
		return it.kind == outDirect || it.kind == outReapSelf || it.kind == outAppend || it.kind == outRoomMember
	}) {
		if err := loadScripts(ctx, client); err != nil {
			o.failed(err)
			o.complete(nil)
			return
		}
		o.scripts = true
	}
	// One transaction (on a cluster, one per hash slot): every command of
	// the batch on a channel sees the same subscribers. A fault then falls
	// between two batches, never inside one, so a later message of a
	// channel cannot be heard where an earlier one was not (msg_id
	// deduplication relies on it).
	b := newBatchPipes(client, o.r.keys.cluster)
	cmdsOf := make([][]goredis.Cmder, len(o.batch))
	for i := 0; i < len(o.batch); {
		if o.batch[i].kind == outRoomMember {
			// A run of presence writes is one script call per slot
			// (roompresence.go).
			j := i
			for j < len(o.batch) && o.batch[j].kind == outRoomMember {
				j++
			}
			cmds := o.queueMembers(ctx, b, o.batch[i:j])
			for ; i < j; i++ {
				cmdsOf[i] = cmds
			}
			continue
		}
		cmdsOf[i] = o.queue(ctx, b, &o.batch[i], users, shares)
		i++
	}
	b.exec(ctx)
	o.r.stats.roundTrips.Add(1)
	up, after := o.r.health.allUp()
	o.unsettled = !up || after != o.gate.seen

	o.status = o.status[:0]
	var netErr error
	suspects := 0
	for i := range o.batch {
		it := &o.batch[i]
		st := itemRetry
		if netErr == nil {
			if err := networkError(cmdsOf[i]); err != nil {
				netErr = err
			} else {
				st = o.result(it, cmdsOf[i])
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

// checkSuspects decides what publishes heard by nobody mean: if this
// node's probe channels still have their subscriber, and its connections
// have not gone down and up since the batch was sent (epoch), the channels
// simply had no audience left, and they are done; if not, this node's
// subscriptions were gone (and very likely everyone's): they are sent again
// after the recovery.
func (o *outbox) checkSuspects(ctx context.Context, epoch uint64) {
	intact := false
	if up, now := o.r.health.allUp(); up && now == epoch && !o.failing.Load() && o.r.keys.cluster {
		intact = o.suspectSlotsIntact(ctx)
	} else if up && now == epoch && !o.failing.Load() {
		pipe := o.conn().Pipeline()
		counts := make([]*goredis.IntCmd, o.r.cfg.PubSubConnections)
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
		// Held: the queue waits for a recovery later than the batch (at
		// once if it already happened).
		o.gate.transition(outEvent{kind: evUnheard, epoch: epoch})
		o.r.host.Actors.Send(o.r.bus, probeNow{})
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
			it.answer(0, port.ErrUnavailable)
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
