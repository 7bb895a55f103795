package redis

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"
)

// On a Redis Cluster every node must spread the rooms over the same number
// of partitions: a node with another count puts a room on another channel,
// and nodes would stop hearing each other without a word. So each node
// records its count under the hub's tag when it starts ({PREFIX}:layout,
// SET NX: the first node decides), and a node whose count differs logs it
// and reports itself not connected (State), which keeps it out of a load
// balancer's rotation (/readyz) until it is restarted with the count in
// use.

// layoutKey is {PREFIX}:layout, in the hub's slot.
func (k *keyspace) layoutKey() string { return k.hub + ":layout" }

// layout is the outcome of the check: "" until it ran, "ok", or the
// reason the node is out.
type layout struct{ state atomic.Pointer[string] }

func (l *layout) set(s string) { l.state.Store(&s) }

// wrong returns the reason the node's layout is refused, or "".
func (l *layout) wrong() string {
	if p := l.state.Load(); p != nil && *p != "ok" {
		return *p
	}
	return ""
}

// checkLayout records or compares this node's partition count, retrying
// with backoff until Redis answers or the broker closes.
func (r *Broker) checkLayout() {
	mine := strconv.Itoa(r.cfg.Partitions)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.CommandTimeout)
		_, err := r.reader.SetNX(ctx, r.keys.layoutKey(), mine, 0).Result()
		var theirs string
		if err == nil {
			theirs, err = r.reader.Get(ctx, r.keys.layoutKey()).Result()
		}
		cancel()
		switch {
		case err == nil && theirs == mine:
			r.layout.set("ok")
			return
		case err == nil:
			reason := "--redis-partitions " + mine + " differs from the cluster's " + theirs
			r.layout.set(reason)
			r.log.Error("redis cluster layout differs: this node would not hear the others; restart it with the cluster's partition count",
				"partitions", r.cfg.Partitions, "cluster", theirs, "key", r.keys.layoutKey())
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)):
		}
	}
}
