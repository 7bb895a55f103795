package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// clusterOnly skips cluster-failover on the other topologies.
func clusterOnly(topology string) string {
	if topology == topoCluster {
		return ""
	}
	return "needs -redis-topology cluster"
}

// clusterFailover moves a shard's slots under traffic, in turns:
//
//  0. CLUSTER FAILOVER: the shard's replica takes over in a coordinated
//     hand-over (no acknowledged write is lost; the old primary is its
//     replica at once).
//  1. SIGKILL of the shard's primary: the replica is elected once the
//     others flag it failing (cluster-node-timeout, 1.5 s, plus the
//     election); the dead server is then started again on its port with
//     its nodes.conf and rejoins as the new primary's replica.
//  2. Slot migration: the slot of one of the shard's subscribed partitions
//     moves, with its keys, to the next shard's primary (IMPORTING,
//     MIGRATING, MIGRATE, SETSLOT NODE: what redis-cli --cluster reshard
//     does).
//
// The shard is the hub's in the first round (every node's chat, connect
// events and direct messages, and the presence directory), the next ones
// in turn after it. In every case Redis unsubscribes the moved slots'
// sharded channels (sunsubscribe) or, after a SIGKILL, the connections
// drop; each node must resubscribe on the new owner by itself, its outbox
// holding what it publishes meanwhile, and a room's stream starts a new
// epoch (its clients recover with recovered:false, never a silent gap).
//
// The ledger opens the same window as redis-crash and sentinel-failover:
// from the fault (less its pre-slack) until the cluster is healthy again
// and every node is ready and holds the baseline subscriptions (plus the
// join grace), missing copies between nodes are excused; copies on the
// sender's node are owed, and duplicates, reordering and silent gaps are
// violations as in every round. After a SIGKILL the window closes before
// the dead server is started again: its rejoining as a replica must cost
// nothing.
func clusterFailover(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	t, ok := s.redis.(*clusterTopology)
	if !ok {
		res.violate("needs -redis-topology cluster")
		return res
	}
	if _, err := t.waitHealthy(ctx, clusterWait); err != nil {
		res.violate("before the fault: %v", err)
		return res
	}
	hub, err := t.hubShard(ctx)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	kind := s.failovers % 3
	shard := (hub + s.failovers) % len(t.shards)
	old := t.shardPrimary(ctx, shard)
	replica := t.shardReplica(shard, old)
	if old == nil || replica == nil {
		res.violate("shard %d has no primary or no replica", shard)
		return res
	}
	var slot, to int
	if kind == 2 {
		// A shard may hold none of the rooms' partitions: then another's
		// moves, to the shard after its owner.
		if slot, shard, err = t.partitionSlot(ctx, s.prefix, shard); err != nil {
			res.violate("%v", err)
			return res
		}
		to = (shard + 1) % len(t.shards)
	}

	t0 := time.Now()
	w := &window{fault: "cluster-failover", scope: scopeCrossNode, from: t0}
	s.ledger.openWindow(w)
	fig := failoverFigure{event: "promoted"}
	switch kind {
	case 0:
		fig.how = "CLUSTER FAILOVER"
		err = replica.admin.Do(ctx, "CLUSTER", "FAILOVER").Err()
	case 1:
		fig.how = "SIGKILL"
		old.stop(true)
	case 2:
		fig.how, fig.event = "slot migration", "moved"
		err = t.migrate(ctx, slot, to)
	}
	s.failovers++
	res.count++
	if err == nil && kind < 2 {
		_, ok := waitFor(ctx, clusterWait, func() bool { return replica.role(ctx, "master", "") })
		if !ok {
			err = fmt.Errorf("%s not primary of shard %d within %v", replica.name, shard, clusterWait)
		}
	}
	if err == nil {
		_, err = t.waitHealthy(ctx, clusterWait)
	}
	if err != nil {
		s.ledger.closeWindow(w, time.Now())
		res.violate("%s of shard %d: %v", fig.how, shard, err)
		res.recovered = time.Since(t0)
		return res
	}
	fig.promoted = time.Since(t0)
	subscribedAfter, ok := s.waitRecovered(ctx, 20*time.Second)
	fig.subscribed = time.Since(t0)
	s.ledger.closeWindow(w, time.Now())
	res.recovered = time.Since(t0)
	if !ok {
		res.violate("nodes not ready and subscribed within 20 s of the cluster's recovery from %s of shard %d", fig.how, shard)
	}
	switch kind {
	case 2:
		res.detail = fmt.Sprintf("slot %d of shard %d to shard %d: every server names the new owner in %v",
			slot, shard, to, fig.promoted.Round(time.Millisecond))
	default:
		res.detail = fmt.Sprintf("%s %s (shard %d): %s primary and the cluster ok in %v",
			fig.how, old.name, shard, replica.name, fig.promoted.Round(time.Millisecond))
	}
	res.detail += fmt.Sprintf(", nodes subscribed %v later", subscribedAfter.Round(time.Millisecond))
	if kind == 1 {
		t1 := time.Now()
		if err := old.start(ctx); err != nil {
			res.violate("restart %s: %v", old.name, err)
		} else if _, err := t.waitHealthy(ctx, clusterWait); err != nil {
			res.violate("after %s's restart: %v", old.name, err)
		}
		fig.demoted = time.Since(t0)
		res.detail += fmt.Sprintf(", %s back as replica in %v", old.name, time.Since(t1).Round(time.Millisecond))
	}
	fig.recovered = res.recovered
	s.report.Failovers = append(s.report.Failovers, fig)
	return res
}

// partitionSlot is the slot of a partition channel of this run subscribed
// on shard i's primary (of another shard if none is), and its shard.
func (t *clusterTopology) partitionSlot(ctx context.Context, prefix string, i int) (slot, shard int, err error) {
	chs, err := t.channels(ctx, prefix+":part:*")
	if err != nil {
		return 0, 0, err
	}
	slot, shard = -1, -1
	for _, ch := range chs {
		sl, ok := tagSlot(ch)
		if !ok {
			continue
		}
		sh, err := t.shardForSlot(ctx, sl)
		if err != nil {
			continue
		}
		if sh == i {
			return sl, sh, nil
		}
		slot, shard = sl, sh
	}
	if slot < 0 {
		return 0, 0, fmt.Errorf("no partition channel of %s subscribed", prefix)
	}
	return slot, shard, nil
}

// migrate moves slot, with its keys, to the primary of shard to, and waits
// until every running server names the new owner.
func (t *clusterTopology) migrate(ctx context.Context, slot, to int) error {
	from, err := t.shardForSlot(ctx, slot)
	if err != nil {
		return err
	}
	src, dst := t.shardPrimary(ctx, from), t.shardPrimary(ctx, to)
	if src == nil || dst == nil || src == dst {
		return fmt.Errorf("slot %d: no source or destination primary (shards %d -> %d)", slot, from, to)
	}
	if err := dst.admin.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", t.ids[src]).Err(); err != nil {
		return fmt.Errorf("SETSLOT IMPORTING: %w", err)
	}
	if err := src.admin.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", t.ids[dst]).Err(); err != nil {
		return fmt.Errorf("SETSLOT MIGRATING: %w", err)
	}
	host, port, _ := net.SplitHostPort(dst.addr())
	for range 1000 {
		keys, err := src.admin.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			return fmt.Errorf("GETKEYSINSLOT: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		// A key that expired meanwhile makes MIGRATE answer NOKEY.
		if err := src.admin.Do(ctx, args...).Err(); err != nil && !strings.Contains(err.Error(), "NOKEY") {
			return fmt.Errorf("MIGRATE: %w", err)
		}
	}
	// The destination first, then the source, then the others: what
	// redis-cli does, so that no server sends a client back and forth.
	order := []*redisProc{dst, src}
	ps, err := t.primaries(ctx)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p != dst && p != src {
			order = append(order, p)
		}
	}
	for _, p := range order {
		if err := p.admin.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", t.ids[dst]).Err(); err != nil {
			return fmt.Errorf("SETSLOT NODE on %s: %w", p.name, err)
		}
	}
	_, ok := waitFor(ctx, clusterWait, func() bool {
		for _, r := range t.nodes {
			if !r.running() {
				continue
			}
			owner := ""
			for _, ln := range t.view(ctx, r) {
				if ln.has("master") && ln.serves(slot) {
					owner = ln.id
				}
			}
			if owner != t.ids[dst] {
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("slot %d not named on %s by every server within %v", slot, dst.name, clusterWait)
	}
	return nil
}
