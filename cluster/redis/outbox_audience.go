package redis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// sendable returns how many commands at the head of the queue may leave
// now (at most MaxBatch), or 0 and how long to wait. After a recovery of
// this node's connections, the other nodes' subscriptions may not be back
// yet, and what is published before they are is lost to them. So a publish
// leaves only once its channel has, again, at least as many subscribers as
// heard its last publish before (PUBSUB NUMSUB), and a direct message only
// once the nodes alive before are registered again; FlushWait after the
// recovery, everything leaves (a node may have died meanwhile). A room
// publication (outAppend) waits as a publish does: the stream's catch-up
// read that a late node makes after its resubscription holds only the
// newest HistorySize publications, and a backlog flushed while that node
// is away can be longer (after a Sentinel failover, a node whose
// subscriptions came back 100 ms before another's flushed several hundred
// into the new primary's stream). Presence
// updates need no listener and always leave. Order is kept: the first
// command that must wait holds those behind it. It runs in Open and
// Verifying (see outState); only Verifying checks.
func (o *outbox) sendable() (int, time.Duration) {
	rec := &o.gate.rec
	o.mu.Lock()
	head := o.items[o.head:min(len(o.items), o.head+o.maxBatch)]
	if o.gate.state == stateOpen {
		o.mu.Unlock()
		return len(head), 0
	}
	var chans []string
	var want []int64
	directs := false
	for _, it := range head {
		switch it.kind {
		case outPublish, outAppend:
			if _, ok := rec.verified[it.channel]; !ok && o.receivers[it.channel] > 0 && !slices.Contains(chans, it.channel) && len(chans) < 256 {
				chans, want = append(chans, it.channel), append(want, o.receivers[it.channel])
			}
		case outDirect:
			directs = directs || !rec.peersBack && len(rec.peers) > 0
		}
	}
	o.mu.Unlock()
	if len(chans) == 0 && !directs {
		return len(head), 0
	}
	if time.Since(rec.since) > o.r.cfg.FlushWait {
		o.gate.transition(outEvent{kind: evWindowOver})
		if rec.held {
			o.r.stats.flushTimeouts.Add(1)
			o.r.log.Warn("redis: other nodes' subscriptions not back in time; sending anyway", "after", o.r.cfg.FlushWait)
		}
		return len(head), 0
	}
	ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
	defer cancel()
	pipe := o.conn().Pipeline()
	var numsub *goredis.MapStringIntCmd
	var exists *goredis.IntCmd
	var got map[string]int64
	if len(chans) > 0 && !o.r.keys.cluster {
		numsub = pipe.PubSubNumSub(ctx, chans...)
	}
	if directs {
		keys := make([]string, len(rec.peers))
		for i, p := range rec.peers {
			keys[i] = o.r.keys.aliveKey(p)
		}
		exists = pipe.Exists(ctx, keys...)
	}
	err := error(nil)
	if pipe.Len() > 0 {
		_, err = pipe.Exec(ctx)
	}
	if err == nil && len(chans) > 0 && o.r.keys.cluster {
		got, err = o.shardNumSub(ctx, chans)
	}
	if err != nil {
		o.failed(err)
		return 0, time.Until(o.retryAt)
	}
	o.succeeded()
	if numsub != nil {
		got = numsub.Val()
	}
	if got != nil {
		for i, ch := range chans {
			if got[ch] >= want[i] {
				rec.verified[ch] = struct{}{}
			}
		}
	}
	if exists != nil && exists.Val() >= int64(len(rec.peers)) {
		rec.peersBack = true
	}
	// A resync may have been inserted at the head meanwhile: scan again,
	// under the lock. (An insertion after this only shifts a prefix that is
	// all sendable.)
	o.mu.Lock()
	head = o.items[o.head:min(len(o.items), o.head+o.maxBatch)]
	n := 0
	for _, it := range head {
		if (it.kind == outPublish || it.kind == outAppend) && o.receivers[it.channel] > 0 {
			if _, ok := rec.verified[it.channel]; !ok {
				break
			}
		}
		if it.kind == outDirect && !rec.peersBack && len(rec.peers) > 0 {
			break
		}
		n++
	}
	o.mu.Unlock()
	if n == 0 {
		rec.held = true
		return 0, 20 * time.Millisecond
	}
	return n, 0
}

// shardNumSub is PUBSUB SHARDNUMSUB of the channels' Redis channels, by
// broker channel, summed over the cluster's primaries (read afresh: the
// writer's client may not have seen the slot move yet). Only a slot's
// owner has subscribers: Redis unsubscribes them where a slot leaves.
func (o *outbox) shardNumSub(ctx context.Context, chans []string) (map[string]int64, error) {
	cc, ok := o.conn().(*goredis.ClusterClient)
	if !ok {
		return nil, errors.New("cluster: redis: not a cluster client")
	}
	wires := make([]string, len(chans))
	for i, ch := range chans {
		wires[i] = o.r.keys.wireChannel(ch)
	}
	var mu sync.Mutex
	total := make(map[string]int64, len(wires))
	err := cc.ForEachShard(ctx, func(ctx context.Context, c *goredis.Client) error {
		n, err := c.PubSubShardNumSub(ctx, wires...).Result()
		mu.Lock()
		defer mu.Unlock()
		for w, v := range n {
			total[w] += v
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	got := make(map[string]int64, len(chans))
	for i, ch := range chans {
		got[ch] = total[wires[i]]
	}
	return got, nil
}
