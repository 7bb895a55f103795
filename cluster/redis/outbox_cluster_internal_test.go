package redis

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// roundTrips counts the pipelined round trips with a transaction in them
// that each cluster node's client sends (not a connection's set-up).
type roundTrips struct {
	mu     sync.Mutex
	byAddr map[string]int
}

func (r *roundTrips) hook(addr string) goredis.Hook { return &nodeTrips{r: r, addr: addr} }

func (r *roundTrips) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.byAddr
	r.byAddr = map[string]int{}
	return m
}

type nodeTrips struct {
	r    *roundTrips
	addr string
}

func (n *nodeTrips) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (n *nodeTrips) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (n *nodeTrips) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c goredis.Cmder) bool { return c.Name() == "exec" }) {
			n.r.mu.Lock()
			n.r.byAddr[n.addr]++
			n.r.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// batchClient is a cluster client made as the broker makes the outbox's
// (no retries of its own), whose slot map is reloaded only on a redirect,
// and which counts each node's round trips. Its goroutines are gone when
// the test ends.
func batchClient(t *testing.T, cl *redistest.Cluster) (*goredis.ClusterClient, *roundTrips) {
	t.Helper()
	before := runtime.NumGoroutine()
	opts := cl.ClientOptions()
	opts.MaxRetries, opts.Protocol, opts.DisableIdentity, opts.ClusterStateReloadInterval = -1, 2, true, time.Hour
	cc := goredis.NewClusterClient(opts)
	trips := &roundTrips{byAddr: map[string]int{}}
	cc.OnNewNode(func(c *goredis.Client) { c.AddHook(trips.hook(c.Options().Addr)) })
	t.Cleanup(func() {
		_ = cc.Close()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				t.Errorf("goroutines: %d before, %d after", before, runtime.NumGoroutine())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return c.Ping(ctx).Err() }); err != nil {
		t.Fatal(err)
	}
	trips.take()
	return cc, trips
}

// TestClusterBatchOneRoundTripPerPrimary sends a batch over the 128
// partitions' slots, each with its own transaction, and checks that each
// primary got them in one round trip, and that every command got the reply
// it would have read itself: integers, statuses, arrays of a script, a
// missing value, an error at EXEC that spares the rest of its transaction,
// and a command refused while queued that aborts its transaction only.
func TestClusterBatchOneRoundTripPerPrimary(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	cc, trips := batchClient(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tags := partitionTags(defaultPartitions)
	b := newBatchPipes(cc, true)
	type slotCmds struct {
		incr, wrongType, spub *goredis.IntCmd
		set                   *goredis.StatusCmd
		eval, missing         *goredis.Cmd
	}
	got := make([]slotCmds, len(tags))
	for i, tag := range tags {
		p := b.at(tag + ":n")
		got[i] = slotCmds{
			incr:      p.Incr(ctx, tag+":n"),
			set:       p.Set(ctx, tag+":s", "v", 0),
			wrongType: p.HSet(ctx, tag+":s", "f", "v"),
			eval:      p.Eval(ctx, "return {KEYS[1], tonumber(ARGV[1])}", []string{tag + ":n"}, 7),
			missing:   p.Do(ctx, "get", tag+":none"),
			spub:      p.SPublish(ctx, tag+":ch", "x"),
		}
	}
	// A command refused while queued (wrong arity) aborts its own
	// transaction: its slot is the directory's, which no partition has.
	hub := b.at("{sb}:presence")
	badArity, keep := hub.Do(ctx, "set", "{sb}:a"), hub.Incr(ctx, "{sb}:kept")
	b.exec(ctx)

	for i, g := range got {
		if n, err := g.incr.Result(); n != 1 || err != nil {
			t.Fatalf("%s INCR: %d %v", tags[i], n, err)
		}
		if s, err := g.set.Result(); s != "OK" || err != nil {
			t.Fatalf("%s SET: %q %v", tags[i], s, err)
		}
		if err := g.wrongType.Err(); !goredis.HasErrorPrefix(err, "WRONGTYPE") {
			t.Fatalf("%s HSET on a string: %v, want WRONGTYPE", tags[i], err)
		}
		if v, err := g.eval.Slice(); err != nil || len(v) != 2 || v[0] != tags[i]+":n" || v[1] != int64(7) {
			t.Fatalf("%s EVAL: %#v %v", tags[i], v, err)
		}
		if err := g.missing.Err(); err != goredis.Nil {
			t.Fatalf("%s GET of a missing key: %v, want redis.Nil", tags[i], err)
		}
		if n, err := g.spub.Result(); n != 0 || err != nil {
			t.Fatalf("%s SPUBLISH: %d %v", tags[i], n, err)
		}
	}
	if err := badArity.Err(); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Fatalf("SET with one argument: %v", err)
	}
	if err := keep.Err(); !goredis.HasErrorPrefix(err, "EXECABORT") {
		t.Fatalf("INCR in an aborted transaction: %v, want EXECABORT", err)
	}
	if n, err := cc.Exists(ctx, "{sb}:kept").Result(); n != 0 || err != nil {
		t.Fatalf("the aborted transaction ran: %d %v", n, err)
	}

	sent := trips.take()
	for _, p := range cl.Primaries() {
		if n := sent[p.Addr()]; n != 1 {
			t.Errorf("primary %s: %d round trips for its slots' transactions, want 1 (%v)", p.Addr(), n, sent)
		}
	}
	if len(sent) != len(cl.Primaries()) {
		t.Errorf("round trips by node %v, want one per primary", sent)
	}

	// A kind of command settle cannot fill goes by go-redis's own
	// transaction, its slot alone.
	b = newBatchPipes(cc, true)
	str, n := b.at(tags[0]+":s").Get(ctx, tags[0]+":s"), b.at(tags[1]+":n").Incr(ctx, tags[1]+":n")
	b.exec(ctx)
	if v, err := str.Result(); v != "v" || err != nil {
		t.Fatalf("GET: %q %v", v, err)
	}
	if v, err := n.Result(); v != 2 || err != nil {
		t.Fatalf("INCR: %d %v", v, err)
	}
}

// TestClusterBatchFollowsRedirects moves slots under a client that has not
// heard of it: a transaction sent to the old owner is refused there (MOVED,
// or ASK while the slot migrates), not run, and is sent again where the
// slot is, once; the other slots of the old owner's round trip are not
// sent twice. Keys split by a migration (TRYAGAIN) are left unrun with
// that error, for the outbox to retry.
func TestClusterBatchFollowsRedirects(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	cc, trips := batchClient(t, cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Two tags whose slots the same shard owns; the first moves.
	tags := partitionTags(defaultPartitions)
	moving, staying := tags[0], tags[1]
	from := cl.ShardForSlot(keySlot(moving))
	if cl.ShardForSlot(keySlot(staying)) != from {
		t.Fatalf("partitions 0 and 1 on shards %d and %d", from, cl.ShardForSlot(keySlot(staying)))
	}
	to := (from + 1) % cl.Shards()
	send := func(keys ...string) []*goredis.IntCmd {
		b := newBatchPipes(cc, true)
		var cmds []*goredis.IntCmd
		for _, k := range keys {
			cmds = append(cmds, b.at(k).Incr(ctx, k))
		}
		b.exec(ctx)
		return cmds
	}
	want := func(t *testing.T, what string, c *goredis.IntCmd, n int64) {
		t.Helper()
		if got, err := c.Result(); got != n || err != nil {
			t.Fatalf("%s: INCR %s = %d %v, want %d", what, c.Args()[1], got, err, n)
		}
	}

	t.Run("Moved", func(t *testing.T) {
		cl.MigrateSlot(keySlot(moving), to)
		cmds := send(moving+":n", staying+":n")
		want(t, "slot moved", cmds[0], 1)
		want(t, "slot stayed", cmds[1], 1)
		sent := trips.take()
		if sent[cl.Primary(from).Addr()] != 2 || sent[cl.Primary(to).Addr()] != 1 {
			t.Errorf("round trips %v: want 2 to the old owner (the batch, the MOVED transaction) and 1 to the new", sent)
		}
	})

	t.Run("Ask", func(t *testing.T) {
		tag := tags[2]
		slot := keySlot(tag)
		for _, k := range []string{tag + ":a", tag + ":b"} {
			if err := cc.Set(ctx, k, 10, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		src := cl.PrimaryForSlot(slot).Client()
		m := cl.BeginMigration(slot, (cl.ShardForSlot(slot)+1)%cl.Shards())
		if m.MoveKeys(1) != 1 {
			t.Fatal("no key moved")
		}
		gone, left := tag+":a", tag+":b"
		if n, err := src.Exists(ctx, gone).Result(); err != nil {
			t.Fatal(err)
		} else if n == 1 {
			gone, left = left, gone
		}
		trips.take()
		want(t, "key moved to the importing shard (ASK)", send(gone)[0], 11)
		want(t, "key still on the migrating shard", send(left)[0], 11)
		for _, c := range send(gone, left) {
			if err := c.Err(); !goredis.HasErrorPrefix(err, "TRYAGAIN") {
				t.Fatalf("INCR %s and %s across a migration: %v, want TRYAGAIN", gone, left, err)
			}
		}
		m.Finish()
		for _, k := range []string{gone, left} {
			if v, err := cc.Get(ctx, k).Int(); v != 11 || err != nil {
				t.Fatalf("%s = %d %v after the refused transaction, want 11 (not run)", k, v, err)
			}
		}
	})
}
