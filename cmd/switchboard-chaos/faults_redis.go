package main

import (
	"context"
	"fmt"
	"time"
)

// Redis faults: pause, subscriber connections killed, stop and crash. The
// first two act on the topology's primary (on a cluster, the hub's
// shard's: a connection of every node is there); stop and crash restart
// the one server of the standalone topology on its port.

// standaloneOnly skips stop and crash elsewhere. Behind Sentinel, or in a
// Redis Cluster, a primary that is down for a second or two is failed over
// (sentinel-failover and cluster-failover SIGKILL it and bring it back as
// a replica); started again empty on its port before the failover, it
// would make its replica drop its data set (the restart-without-persistence
// hazard of Redis' replication docs), which is an operator's mistake, not
// a fault the nodes can cover.
func standaloneOnly(topology string) string {
	switch topology {
	case topoStandalone:
		return ""
	case topoCluster:
		return "a stopped primary is failed over there, not restarted on its port (cluster-failover covers it)"
	}
	return "a stopped primary is failed over there, not restarted on its port (sentinel-failover covers it)"
}

// notOnCluster skips mass-exit on a cluster: it reads the release of its
// rooms from their channels, and a room has no channel of its own there
// (its partition's is shared with other rooms, which stay subscribed).
func notOnCluster(topology string) string {
	if topology == topoCluster {
		return "a room has no channel of its own on a cluster (its partition's carries other rooms too), so the release of the mass exit's rooms cannot be read from Redis"
	}
	return ""
}

// maxSentinelPause bounds redis-pause behind Sentinel. CLIENT PAUSE ALL
// also holds the sentinels' PINGs, which call the primary down after
// down-after-milliseconds (1 s) without an answer: a longer pause would be
// a failover, not a pause.
const maxSentinelPause = 500 * time.Millisecond

// waitRecovered waits until every node is ready and Redis holds the
// baseline subscriptions again.
func (s *suite) waitRecovered(ctx context.Context, within time.Duration) (time.Duration, bool) {
	return waitFor(ctx, within, func() bool {
		for _, n := range s.upNodes() {
			if !n.ready() {
				return false
			}
		}
		return s.subsAtBaseline(ctx)
	})
}

// pauseRedis suspends every Redis client for a while: commands wait, no
// connection drops, so nothing may be lost.
func pauseRedis(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	d := 800 * time.Millisecond
	if s.cfg.Duration > 0 {
		d = time.Duration(300+s.rng.IntN(1200)) * time.Millisecond
	}
	if s.redis.kind() == topoSentinel {
		d = min(d, maxSentinelPause)
	}
	p, err := s.redis.primary(ctx)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	t0 := time.Now()
	if err := p.pause(ctx, d); err != nil {
		res.violate("CLIENT PAUSE: %v", err)
		return res
	}
	res.count++
	sleepCtx(ctx, d)
	if _, ok := s.waitRecovered(ctx, 15*time.Second); !ok {
		res.violate("cluster not recovered within 15 s of the pause's end")
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("CLIENT PAUSE %v ALL", d)
	return res
}

// killPubSub drops every subscriber connection; nodes must re-subscribe.
// Until they have, traffic between nodes is at-most-once.
func killPubSub(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	w := &window{fault: "redis-pubsub-kill", scope: scopeCrossNode, from: time.Now()}
	s.ledger.openWindow(w)
	killed, err := onPrimary(ctx, s.redis, func(p *redisProc) (int64, error) { return p.killPubSub(ctx) })
	if err != nil {
		res.violate("CLIENT KILL TYPE pubsub: %v", err)
	}
	res.count++
	took, ok := s.waitRecovered(ctx, 15*time.Second)
	s.ledger.closeWindow(w, time.Now())
	if !ok {
		res.violate("subscriptions not restored within 15 s")
	}
	res.recovered = took
	res.detail = fmt.Sprintf("CLIENT KILL TYPE pubsub (%d connections)", killed)
	return res
}

// stopRedis takes the standalone Redis down (SIGTERM, or SIGKILL when crash) and starts it
// again on the same port. Publishes meanwhile go to each node's outbox;
// between nodes the outage is at-most-once.
func stopRedis(crash bool) func(context.Context, *suite, int) faultResult {
	return func(ctx context.Context, s *suite, _ int) faultResult {
		var res faultResult
		down := time.Second
		if crash {
			down = 0
		} else if s.cfg.Duration > 0 {
			down = time.Duration(500+s.rng.IntN(2000)) * time.Millisecond
		}
		name := map[bool]string{true: "redis-crash", false: "redis-stop"}[crash]
		r, err := s.redis.primary(ctx)
		if err != nil {
			res.violate("%v", err)
			return res
		}
		t0 := time.Now()
		w := &window{fault: name, scope: scopeCrossNode, from: t0}
		s.ledger.openWindow(w)
		r.stop(crash)
		res.count++
		unready := 0
		if down > 0 {
			// Readiness follows the broker: every node should say 503 while
			// Redis is away (reported, not a violation: detection takes a
			// probe interval).
			sleepCtx(ctx, down*3/4)
			for _, n := range s.upNodes() {
				if !n.ready() {
					unready++
				}
			}
			sleepCtx(ctx, down/4)
		}
		if err := r.start(ctx); err != nil {
			res.violate("restart redis: %v", err)
		}
		took, ok := s.waitRecovered(ctx, 20*time.Second)
		s.ledger.closeWindow(w, time.Now())
		if !ok {
			res.violate("cluster not recovered within 20 s of Redis' restart")
		}
		res.recovered = time.Since(t0)
		if crash {
			res.detail = fmt.Sprintf("SIGKILL + restart, recovered %v after", took.Round(time.Millisecond))
		} else {
			res.detail = fmt.Sprintf("down %v, %d/%d nodes unready meanwhile", down, unready, len(s.upNodes()))
		}
		return res
	}
}
