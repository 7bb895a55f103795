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
// node is ready and holds the baseline subscriptions on it. After a
// SIGKILL it then starts the dead server again as a replica of the new
// primary, in sync; after a planned failover it waits until the sentinels
// have demoted the old primary (about 10 s: they reconfigure it once it
// has reported the wrong role for 8 s) and it is in sync. Either way the
// next round has a replica to promote, once the sentinels have seen it.
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
// the nodes are subscribed on the new primary and, after a planned
// failover, the old primary is demoted (plus the join grace),
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
	old, err := t.primary(ctx)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	replica := t.other(old)
	if _, err := t.waitReplicaKnown(ctx, old, replica, sentinelWait); err != nil {
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
	s.failovers++
	res.count++
	promoted, err := t.waitNewPrimary(ctx, old, sentinelWait)
	if err != nil {
		s.ledger.closeWindow(w, time.Now())
		res.violate("%v", err)
		res.recovered = time.Since(t0)
		return res
	}
	fig := failoverFigure{how: how, promoted: time.Since(t0)}
	subscribedAfter, ok := s.waitRecovered(ctx, 20*time.Second)
	fig.subscribed = time.Since(t0)
	if !ok {
		res.violate("nodes not ready and subscribed on the new primary %s within 20 s of its promotion%s", promoted.name, t.tiltNote(ctx))
	}
	res.detail = fmt.Sprintf("%s %s: %s promoted in %v, nodes subscribed %v later",
		how, old.name, promoted.name, fig.promoted.Round(time.Millisecond), subscribedAfter.Round(time.Millisecond))
	if kill {
		s.ledger.closeWindow(w, time.Now())
		res.recovered = time.Since(t0)
		t1 := time.Now()
		if err := t.startReplica(ctx, old, promoted); err != nil {
			res.violate("restart %s as a replica: %v", old.name, err)
		}
		res.detail += fmt.Sprintf(", %s back as replica in %v", old.name, time.Since(t1).Round(time.Millisecond))
	} else {
		// The failover is over once the sentinels have demoted the old
		// primary (REPLICAOF, and its clients closed): until then it takes
		// the writes of any node still connected to it.
		took, err := t.waitInSync(ctx, old, promoted, sentinelWait)
		s.ledger.closeWindow(w, time.Now())
		res.recovered = time.Since(t0)
		if err != nil {
			res.violate("%v", err)
		}
		fig.demoted = time.Since(t0)
		res.detail += fmt.Sprintf(", %s a replica in sync %v later", old.name, took.Round(time.Millisecond))
	}
	fig.recovered = res.recovered
	s.report.Failovers = append(s.report.Failovers, fig)
	return res
}

// failoverFigure is one failover's timing from the fault, for the summary.
type failoverFigure struct {
	how        string
	event      string        // what promoted measures: "promoted" (zero too), "moved" for a slot
	promoted   time.Duration // until every sentinel (every cluster server) names the new primary or owner
	subscribed time.Duration // until every node is ready and subscribed on it
	demoted    time.Duration // planned: until the old primary is a replica in sync
	recovered  time.Duration // until the window closed
}
