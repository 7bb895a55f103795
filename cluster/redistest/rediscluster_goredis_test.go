package redistest

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterGoRedis pins down how go-redis v9's ClusterClient behaves on a
// real cluster where the broker depends on it; docs for the broker's
// design are in these assertions (see also the harness findings notes).
func TestClusterGoRedis(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	ctx := context.Background()
	cl := c.Client()

	// A slot moved away (or a primary demoted) makes Redis send
	// sunsubscribe; go-redis surfaces it as a Subscription, keeps the
	// connection to the old node and does not subscribe again: the
	// subscription is silently gone until the caller acts.
	lostOn := func(t *testing.T, ch string, fault func(), again string) {
		sub := cl.SSubscribe(ctx, ch)
		defer sub.Close()
		expectSub(t, sub, "ssubscribe", ch)
		fault()
		expectSub(t, sub, "sunsubscribe", ch)
		if n, err := cl.SPublish(ctx, ch, "lost").Result(); err != nil || n != 0 {
			t.Fatalf("SPUBLISH after the fault: %d %v, want 0 receivers", n, err)
		}
		// The PubSub is bound to the old node. Subscribing again there is
		// refused with MOVED (returned by Receive, no reconnect) when the
		// slot left the shard; a demoted primary, now a replica of the
		// shard, accepts it and gets the shard's messages.
		if err := sub.SSubscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
		m, err := sub.ReceiveTimeout(ctx, 5*time.Second)
		if again == "MOVED" && (err == nil || !strings.HasPrefix(err.Error(), "MOVED ")) {
			t.Fatalf("SSUBSCRIBE again on the same PubSub: %v %v, want MOVED", m, err)
		}
		if again == "ssubscribe" {
			if s, ok := m.(*redis.Subscription); !ok || s.Kind != "ssubscribe" {
				t.Fatalf("SSUBSCRIBE again on the same PubSub: %v %v, want ssubscribe", m, err)
			}
			if err := cl.SPublish(ctx, ch, "via-replica").Err(); err != nil {
				t.Fatal(err)
			}
			// SPUBLISH counts only the executing node's subscribers; a
			// replica's get the message through replication, "lost" too
			// if the demoted node was still catching up when it was sent.
			for {
				m, err := sub.ReceiveTimeout(ctx, 5*time.Second)
				if err != nil {
					t.Fatalf("on the replica: %v", err)
				}
				if m.(*redis.Message).Payload == "via-replica" {
					break
				}
			}
		}
		// A new PubSub after ReloadState reaches the new owner.
		cl.ReloadState(ctx)
		waitFor(t, func() bool { return masterAddr(ctx, cl, ch) == c.PrimaryForKey(ch).Addr() })
		sub2 := cl.SSubscribe(ctx, ch)
		defer sub2.Close()
		expectSub(t, sub2, "ssubscribe", ch)
		if n, err := cl.SPublish(ctx, ch, "found").Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH after resubscribing: %d %v", n, err)
		}
	}
	t.Run("MigrateSlotUnsubscribes", func(t *testing.T) {
		ch := "{mig}:ch"
		lostOn(t, ch, func() { c.MigrateSlot(c.KeySlot(ch), (c.ShardForSlot(c.KeySlot(ch))+1)%c.Shards()) }, "MOVED")
	})
	t.Run("FailoverUnsubscribes", func(t *testing.T) {
		ch := "{fo}:ch"
		lostOn(t, ch, func() { c.Failover(c.ShardForSlot(c.KeySlot(ch))) }, "ssubscribe")
	})

	t.Run("KillPrimary", func(t *testing.T) {
		ch := "{kill}:ch"
		o := c.ClientOptions()
		o.ClusterStateReloadInterval = time.Second
		fast := redis.NewClusterClient(o)
		defer fast.Close()
		sub := fast.SSubscribe(ctx, ch)
		defer sub.Close()
		expectSub(t, sub, "ssubscribe", ch)
		msgs := sub.Channel()
		if err := cl.SPublish(ctx, ch, "warm").Err(); err != nil {
			t.Fatal(err)
		}
		<-msgs
		killed := c.KillPrimary(c.ShardForSlot(c.KeySlot(ch)))
		// A dead node answers no MOVED: with the default 60 s
		// ClusterStateReloadInterval the client keeps dialling it.
		var opErr *net.OpError
		if err := cl.SPublish(ctx, ch, "x").Err(); !errors.As(err, &opErr) {
			t.Fatalf("SPUBLISH on the stale client: %v, want a dial error", err)
		}
		// With a 1 s interval the PubSub reconnects to the new primary and
		// subscribes again by itself.
		deadline := time.Now().Add(15 * time.Second)
		for {
			if n, _ := fast.SPublish(ctx, ch, "back").Result(); n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no subscriber on %s after the failover: %v", ch, c.ShardNumSub(ch))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if m := <-msgs; m.Payload != "back" {
			t.Fatalf("got %q", m.Payload)
		}
		// The killed node comes back as a replica of its replacement.
		c.Restart(killed)
		if c.role(killed) != "slave" || c.Primary(c.ShardOf(killed)) == killed {
			t.Fatalf("%s rejoined as %s", killed.Addr(), c.role(killed))
		}
		cl.ReloadState(ctx)
		waitFor(t, func() bool { return masterAddr(ctx, cl, ch) == c.PrimaryForKey(ch).Addr() })
	})

	t.Run("ScriptSPublish", func(t *testing.T) {
		sc := redis.NewScript(`redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SPUBLISH', ARGV[2], ARGV[1])`)
		if n, err := sc.Run(ctx, cl, []string{"{r1}:k"}, "v", "{r1}:ch").Int(); err != nil || n != 0 {
			t.Fatalf("SPUBLISH on the keys' hash tag: %d %v", n, err)
		}
		for _, ch := range []string{"{r2}:ch", "r1ch"} {
			if c.KeySlot(ch) == c.KeySlot("{r1}:k") {
				continue
			}
			err := sc.Run(ctx, cl, []string{"{r1}:k"}, "v", ch).Err()
			if err == nil || !strings.Contains(err.Error(), "non local key") {
				t.Fatalf("SPUBLISH %s from a script keyed on {r1}: %v", ch, err)
			}
		}
	})

	t.Run("Transactions", func(t *testing.T) {
		_, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{t1}:a", 1, 0)
			p.Set(ctx, "{t2}:a", 1, 0)
			return nil
		})
		if !errors.Is(err, redis.ErrCrossSlot) {
			t.Fatalf("TxPipeline over two slots: %v, want ErrCrossSlot", err)
		}
		if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{t1}:a", 1, 0)
			p.SPublish(ctx, "{t1}:ch", "x")
			p.Publish(ctx, "global", "x") // keyless: does not pin a slot
			return nil
		}); err != nil {
			t.Fatalf("TxPipeline on one hash tag: %v", err)
		}
		cmds, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range []string{"{t1}:b", "{t2}:b", "{t3}:b", "{t4}:b"} {
				p.Set(ctx, k, 1, 0)
			}
			return nil
		})
		if err != nil || len(cmds) != 4 {
			t.Fatalf("Pipeline over several nodes: %v", err)
		}
	})

	t.Run("AskDuringMigration", func(t *testing.T) {
		for _, k := range []string{"{m}:1", "{m}:2"} {
			if err := cl.Set(ctx, k, k, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		slot := c.KeySlot("{m}:1")
		m := c.BeginMigration(slot, (c.ShardForSlot(slot)+1)%c.Shards())
		m.MoveKeys(1)
		for _, k := range []string{"{m}:1", "{m}:2"} {
			if v, err := cl.Get(ctx, k).Result(); err != nil || v != k {
				t.Fatalf("GET %s while its slot migrates (ASK): %q %v", k, v, err)
			}
		}
		_, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, "{m}:1")
			p.Get(ctx, "{m}:2")
			return nil
		})
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			t.Fatalf("MULTI over keys split by a migration: %v, want TRYAGAIN", err)
		}
		// Sharded pub/sub stays on the source until the slot is handed over.
		sub := cl.SSubscribe(ctx, "{m}:ch")
		defer sub.Close()
		expectSub(t, sub, "ssubscribe", "{m}:ch")
		if n, err := cl.SPublish(ctx, "{m}:ch", "x").Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH while migrating: %d %v", n, err)
		}
		m.Finish()
		if msg, err := sub.ReceiveTimeout(ctx, 5*time.Second); err != nil || msg.(*redis.Message).Payload != "x" {
			t.Fatalf("got %v %v", msg, err)
		}
		expectSub(t, sub, "sunsubscribe", "{m}:ch")
	})
}

func expectSub(t *testing.T, sub *redis.PubSub, kind, ch string) {
	t.Helper()
	m, err := sub.ReceiveTimeout(context.Background(), 10*time.Second)
	s, ok := m.(*redis.Subscription)
	if err != nil || !ok || s.Kind != kind || s.Channel != ch {
		t.Fatalf("got %v %v, want %s %s", m, err, kind, ch)
	}
}

// masterAddr is the address the client routes ch's slot to now.
func masterAddr(ctx context.Context, cl *redis.ClusterClient, ch string) string {
	m, err := cl.MasterForKey(ctx, ch)
	if err != nil {
		return ""
	}
	return m.Options().Addr
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
