package main

import (
	"context"
	"fmt"
	"time"
)

// sentinelOnly skips sentinel-failover on the other topologies.
func sentinelOnly(topology string) string {
	if topology == topoSentinel {
		return ""
	}
	return "needs -redis-topology sentinel"
}

// sentinelFailover moves the primary to the replica under traffic, in
// turns by SIGKILL of the primary and by a planned failover (SENTINEL
// FAILOVER). It waits until every sentinel names the new primary and every
// node is ready and holds the baseline subscriptions on it, then, after a
// SIGKILL, starts the dead server again as a replica of the new primary,
// in sync, so that the next round has a replica to promote.
//
// What a failover may cost, and how the ledger counts it. A node's outbox
// sends each publication as one script that numbers, stores and publishes
// it, and drops it only once Redis has answered; everything published
// while the primary is gone waits there and goes to the new primary. So:
//
//   - SIGKILL. A publication the primary ran in the instant before it died
//     is in flight: if the primary had not yet written it to a
//     subscriber's socket, it is lost to that subscriber; if it had not
//     replicated it either, the node, with no answer, sends it again and
//     the new primary publishes it (the old copies, if any, were already
//     out: a duplicate); if it had replicated it, the new primary knows the
//     publication's msg_id mark and does not publish it twice.
//   - SENTINEL FAILOVER. Until the sentinels demote the old primary
//     (REPLICAOF, which also closes its clients), a node still connected
//     to it publishes there: subscribers still on it get the publication,
//     those already on the new primary do not, and the old primary then
//     drops it with its data set.
//
// Replication is asynchronous, so the new primary starts each room's
// stream in a new epoch; members that rejoin with since across it are
// told recovered:false and must not see a silent gap. The ledger opens the
// same window as redis-crash: from the fault (less its pre-slack) until
// the nodes are subscribed on the new primary (plus the join grace),
// missing copies between nodes are excused; copies on the sender's node
// (delivered by the node itself) are owed, and duplicates, reordering and
// silent gaps are violations as in every round.
func sentinelFailover(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	t, ok := s.redis.(*sentinelTopology)
	if !ok {
		res.violate("needs -redis-topology sentinel")
		return res
	}
	kill := s.failovers%2 == 0
	s.failovers++
	old, err := t.primary(ctx)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	replica := t.other(old)
	if err := t.waitReplicaKnown(ctx, old, replica, 20*time.Second); err != nil {
		res.violate("%v", err)
		return res
	}

	t0 := time.Now()
	w := &window{fault: "sentinel-failover", scope: scopeCrossNode, from: t0}
	s.ledger.openWindow(w)
	how := "SENTINEL FAILOVER"
	if kill {
		how = "SIGKILL"
		old.stop(true)
	} else if err := t.failover(ctx, 10*time.Second); err != nil {
		s.ledger.closeWindow(w, time.Now())
		res.violate("%v", err)
		return res
	}
	res.count++
	promoted, err := t.waitNewPrimary(ctx, old, 30*time.Second)
	if err != nil {
		s.ledger.closeWindow(w, time.Now())
		res.violate("%v", err)
		res.recovered = time.Since(t0)
		return res
	}
	promotedAfter := time.Since(t0)
	subscribedAfter, ok := s.waitRecovered(ctx, 20*time.Second)
	s.ledger.closeWindow(w, time.Now())
	res.recovered = time.Since(t0)
	if !ok {
		res.violate("nodes not ready and subscribed on the new primary %s within 20 s of its promotion", promoted.name)
	}
	res.detail = fmt.Sprintf("%s %s: %s promoted in %v, nodes subscribed %v later",
		how, old.name, promoted.name, promotedAfter.Round(time.Millisecond), subscribedAfter.Round(time.Millisecond))
	if kill {
		t1 := time.Now()
		if err := t.startReplica(ctx, old, promoted); err != nil {
			res.violate("restart %s as a replica: %v", old.name, err)
		}
		res.detail += fmt.Sprintf(", %s back as replica in %v", old.name, time.Since(t1).Round(time.Millisecond))
	}
	s.report.Failovers = append(s.report.Failovers, failoverFigure{how: how, promoted: promotedAfter, recovered: res.recovered})
	return res
}

// failoverFigure is one failover's timing, for the summary.
type failoverFigure struct {
	how                 string
	promoted, recovered time.Duration // fault to promotion, and to nodes subscribed on it
}
