package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// newClusterScenario is newFaultScenario on a Redis Cluster: two nodes,
// a sender and a listener on each, all in trafficRoom.
func newClusterScenario(t *testing.T, cl *redistest.Cluster, partitions int, history bool, more ...nodeOpt) *faultScenario {
	f := &faultScenario{t: t}
	opts := append([]nodeOpt{withCluster(cl, partitions)}, more...)
	if !history {
		opts = append(opts, func(_ *redis.Config, c *actors.Config) { c.HistorySize = actors.NoHistory })
	}
	for i := 1; i <= 2; i++ {
		n := startNode(t, "", fmt.Sprintf("n%d", i), opts...)
		f.nodes = append(f.nodes, n)
		lc, lrec := dialRecorded(t, n, fmt.Sprintf("listener%d", i))
		sc, srec := dialRecorded(t, n, fmt.Sprintf("s%d", i))
		lrec.unnumbered, srec.unnumbered = !history, !history
		for _, c := range []*wsclient.Client{lc, sc} {
			_ = c.SendJSON(map[string]any{"type": "join_room", "room": trafficRoom, "id": "join"})
		}
		for _, rec := range []*recorder{lrec, srec} {
			waitFor(t, "joined", 5*time.Second, func() bool { a, _ := rec.outcome("join"); return a })
		}
		f.listeners = append(f.listeners, lrec)
		f.senders = append(f.senders, &trafficSender{name: fmt.Sprintf("s%d", i), c: sc, rec: srec, stop: make(chan struct{}), done: make(chan struct{})})
	}
	return f
}

// subscribedOn waits until both nodes are connected and subscribed to
// channel on the primary of its slot, and returns how long that took
// after since.
func (f *faultScenario) subscribedOn(cl *redistest.Cluster, slot int, channel string, since time.Time) time.Duration {
	waitFor(f.t, "both nodes subscribed on the slot's primary", 15*time.Second, func() bool {
		return f.allConnected() && cl.ShardNumSub(channel)[cl.PrimaryForSlot(slot).Addr()] == 2
	})
	return time.Since(since)
}

// clusterFault runs traffic in trafficRoom, applies fault to the shard of
// the room's slot (fault returns once the cluster has settled), waits
// until both nodes are subscribed there again and 100 more messages were
// sent, and checks every message's fate. It returns the slot and shard,
// how long the fault took to settle and the subscriptions to come back
// after that, and finish's counts.
func (f *faultScenario) clusterFault(cl *redistest.Cluster, fault func(slot, shard int)) (slot, shard int, settled, back time.Duration, acked, refused, lost int) {
	slot, channel := f.nodes[0].broker.RoomSlot(trafficRoom)
	shard = cl.ShardForSlot(slot)
	f.start(4000, 4*time.Millisecond)
	f.waitSent(60)
	f.inject(func() { fault(slot, shard) })
	at := time.Now()
	back = f.subscribedOn(cl, slot, channel, at)
	f.waitSent(f.senders[0].count() + 100)
	acked, refused, lost = f.finish()
	return slot, shard, at.Sub(f.faultAt), back, acked, refused, lost
}

// TestRedisClusterSlotMigrationMidTraffic moves the slot of a room's
// partition to another shard under traffic (MOVED, ASK, and Redis
// unsubscribing the sharded channels there): the nodes resubscribe on the
// new owner, and every acknowledged message is delivered exactly once in
// order, the room's stream going on in a new epoch. Without history, room
// messages are plain publishes, and those heard by nobody after the move
// are the outbox's suspects (sent again after the recovery).
func TestRedisClusterSlotMigrationMidTraffic(t *testing.T) {
	for _, history := range []bool{true, false} {
		t.Run(fmt.Sprint("history=", history), func(t *testing.T) { migrateMidTraffic(t, history) })
	}
}

func migrateMidTraffic(t *testing.T, history bool) {
	cl := startCluster(t)
	f := newClusterScenario(t, cl, 16, history)
	slot, from, moved, back, acked, refused, lost := f.clusterFault(cl, func(slot, from int) {
		cl.MigrateSlot(slot, (from+1)%cl.Shards())
	})
	t.Logf("slot %d moved from shard %d to %d (%v until every node named the new owner): subscriptions there %v after that; %d delivered exactly once in order, %d refused, %d lost in flight",
		slot, from, (from+1)%cl.Shards(), moved.Round(time.Millisecond), back.Round(time.Millisecond), acked, refused, lost)
	if lost > 0 {
		t.Fatalf("%d messages lost across the slot migration", lost)
	}
}

// TestRedisClusterFailoverMidTraffic runs CLUSTER FAILOVER on the shard
// of a room's partition under traffic: its replica takes over, the nodes
// follow, and every acknowledged message is delivered exactly once in
// order (a coordinated failover loses no write).
func TestRedisClusterFailoverMidTraffic(t *testing.T) {
	cl := startCluster(t)
	f := newClusterScenario(t, cl, 16, true)
	_, shard, promoted, back, acked, refused, lost := f.clusterFault(cl, func(_, shard int) { cl.Failover(shard) })
	t.Logf("CLUSTER FAILOVER of shard %d (%v until the cluster agreed): subscriptions on the new primary %v after that; %d delivered exactly once in order, %d refused, %d lost in flight",
		shard, promoted.Round(time.Millisecond), back.Round(time.Millisecond), acked, refused, lost)
	if lost > 0 {
		t.Fatalf("%d messages lost across the failover", lost)
	}
}

// TestRedisClusterKilledPrimaryMidTraffic SIGKILLs the primary of a
// room's partition under traffic: the shard is down until the cluster
// promotes its replica (cluster-node-timeout 1.5 s and the election), the
// outbox holds what is sent meanwhile, and every acknowledged message is
// delivered exactly once in order, except a publication whose round trip
// was in flight at the kill (the primary ran it and died before writing
// it to its subscribers, or before replicating it: replication is
// asynchronous), which finish counts apart. The outbox holds at most 40,
// as in TestRedisClusterShardPausedMidTraffic.
func TestRedisClusterKilledPrimaryMidTraffic(t *testing.T) {
	cl := startCluster(t)
	f := newClusterScenario(t, cl, 16, true, withBroker(func(c *redis.Config) { c.OutboxLimit = 40 }))
	// The primary is looked up before the fault: the messages sent from
	// the kill on must arrive or be refused, those before it may be lost
	// with the primary (finish counts them apart).
	slot, _ := f.nodes[0].broker.RoomSlot(trafficRoom)
	primary := cl.Primary(cl.ShardForSlot(slot))
	_, shard, promoted, back, acked, refused, lost := f.clusterFault(cl, func(int, int) {
		primary.Kill()
		cl.WaitHealthy() // the replica promoted
	})
	t.Logf("primary of shard %d SIGKILLed, replica promoted %v later: subscriptions on it %v after that; %d delivered exactly once in order, %d refused, %d lost in flight at the kill",
		shard, promoted.Round(time.Millisecond), back.Round(time.Millisecond), acked, refused, lost)
	if lost > 4 {
		t.Fatalf("%d deliveries lost across the failover: more than the publications in flight at the kill", lost)
	}
}

// TestRedisClusterShardPausedMidTraffic SIGSTOPs every member of the room
// shard for 1 s under traffic (less than cluster-node-timeout, so that no
// failover follows: a longer pause ends like TestRedisClusterKilledPrimary,
// the resumed replica taking over): the shard does not answer, the probes
// restart the connections to it, and every message sent meanwhile waits
// in the outbox or is refused to its sender. Every acknowledged message is
// delivered exactly once in order. The outbox holds at most 40, as in
// TestRedisRestartMidTraffic: what waits must fit in the room's history
// (100), from which a node that resubscribes after the others have
// published catches up.
func TestRedisClusterShardPausedMidTraffic(t *testing.T) {
	cl := startCluster(t)
	f := newClusterScenario(t, cl, 16, true, withBroker(func(c *redis.Config) { c.OutboxLimit = 40 }))
	_, shard, resumed, back, acked, refused, lost := f.clusterFault(cl, func(_, shard int) { cl.PauseShard(shard, time.Second) })
	t.Logf("shard %d paused 1 s (%v until the cluster was healthy again): subscriptions back %v after that; %d delivered exactly once in order, %d refused, %d lost in flight",
		shard, resumed.Round(time.Millisecond), back.Round(time.Millisecond), acked, refused, lost)
	if lost > 0 {
		t.Fatalf("%d messages lost across the pause", lost)
	}
	if refused == 0 {
		t.Fatal("no message was refused: the outbox limit was not exercised")
	}
}
