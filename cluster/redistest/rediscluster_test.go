package redistest

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestCluster starts a 3+3 cluster with a password, writes keys over every shard through a
// ClusterClient, runs sharded pub/sub, fails a shard over, migrates a slot,
// and checks that Stop leaves no process listening.
func TestCluster(t *testing.T) {
	baseline := runtime.NumGoroutine()
	start := time.Now()
	c := StartCluster(t, ClusterOptions{Password: "secret"}) // AUTH on every path: redis-cli, replication, MIGRATE
	t.Logf("started in %v", time.Since(start))
	ctx := context.Background()
	cl := c.Client()
	shards := map[int]int{}
	for i := range 60 {
		key := fmt.Sprintf("k%d", i)
		if err := cl.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		shards[c.ShardForSlot(c.KeySlot(key))]++
	}
	if len(shards) != 3 {
		t.Fatalf("keys over shards: %v", shards)
	}

	sub := cl.SSubscribe(ctx, "ch{x}")
	if _, err := sub.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := cl.SPublish(ctx, "ch{x}", "hello").Err(); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("got %v %v", msg, err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	old := c.Primary(1)
	p := c.Failover(1)
	t.Logf("failover in %v", time.Since(t0))
	if p == old || c.Primary(1) != p || c.ReplicaOf(p) != old {
		t.Fatalf("after failover primary %v replica %v (old %v)", p, c.ReplicaOf(p), old)
	}

	slot := c.KeySlot("k1")
	from := c.ShardForSlot(slot)
	to := (from + 1) % 3
	t0 = time.Now()
	c.MigrateSlot(slot, to)
	t.Logf("migration in %v", time.Since(t0))
	if got := c.ShardForSlot(slot); got != to {
		t.Fatalf("slot %d on shard %d, want %d", slot, got, to)
	}
	if v, err := cl.Get(ctx, "k1").Int(); err != nil || v != 1 {
		t.Fatalf("k1 after migration: %v %v", v, err)
	}

	addrs := c.Addrs()
	c.Stop()
	for _, s := range c.Nodes() {
		if s.Running() {
			t.Errorf("%s still running", s.Addr())
		}
	}
	for _, a := range addrs {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections", a)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Stop, %d before", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
