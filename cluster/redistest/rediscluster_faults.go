package redistest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"syscall"
	"time"
)

// Failover runs CLUSTER FAILOVER on a replica of shard i (a coordinated
// hand-over: no write is lost) and waits until it is the primary and the
// cluster is healthy. It returns the new primary.
func (c *Cluster) Failover(i int) *Server {
	c.t.Helper()
	old := c.Primary(i)
	r := c.ReplicaOf(old)
	if r == nil {
		c.t.Fatalf("redistest: shard %d has no replica to fail over to", i)
	}
	if err := r.Client().Do(context.Background(), "CLUSTER", "FAILOVER").Err(); err != nil {
		c.t.Fatalf("redistest: CLUSTER FAILOVER on %s: %v", r.Addr(), err)
	}
	c.waitPrimary(i, r)
	return r
}

// KillPrimary SIGKILLs the primary of shard i and waits until a replica
// has been elected (after NodeTimeout and the election delay) and the
// cluster is healthy. It returns the killed node, for Restart.
func (c *Cluster) KillPrimary(i int) *Server {
	c.t.Helper()
	old := c.Primary(i)
	if c.ReplicaOf(old) == nil {
		c.t.Fatalf("redistest: shard %d has no replica to take over", i)
	}
	old.Kill()
	c.waitPrimary(i, nil)
	return old
}

// waitPrimary waits until want (or, if nil, any running member of shard i)
// is the shard's primary and the cluster is healthy.
func (c *Cluster) waitPrimary(i int, want *Server) {
	c.t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		err := c.healthy()
		if err == nil && want != nil && c.role(want) != "master" {
			err = fmt.Errorf("%s is not primary of shard %d yet", want.Addr(), i)
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: shard %d: %v\n%s", i, err, c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts a killed node again on its port with its nodes.conf: it
// rejoins the cluster (a former primary comes back as a replica of its
// replacement, with an empty data set synced from it). It waits until the
// cluster is healthy.
func (c *Cluster) Restart(s *Server) {
	c.t.Helper()
	s.Restart()
	c.mu.Lock()
	rules := slices.Clone(c.acl)
	c.mu.Unlock()
	for _, rule := range rules {
		c.applyACL(s, rule)
	}
	c.WaitHealthy()
}

// PauseShard SIGSTOPs every member of shard i for d, then SIGCONTs them and
// waits until the cluster is healthy: the shard is down and no replica can
// take over. If d exceeds NodeTimeout the other nodes flag the shard as
// failing and, with the default cluster-require-full-coverage, the whole
// cluster refuses commands until it returns. PauseShard blocks for about
// d; run it in a goroutine to act during the pause.
func (c *Cluster) PauseShard(i int, d time.Duration) {
	c.t.Helper()
	c.pause(c.shards[i], d)
}

// PausePrimary SIGSTOPs only the primary of shard i for d. If d exceeds
// NodeTimeout its replica is elected meanwhile and the old primary, once
// resumed, becomes its replica. It waits until the cluster is healthy and
// returns the shard's primary then.
func (c *Cluster) PausePrimary(i int, d time.Duration) *Server {
	c.t.Helper()
	c.pause([]*Server{c.Primary(i)}, d)
	return c.Primary(i)
}

func (c *Cluster) pause(nodes []*Server, d time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	for _, s := range nodes {
		if s.Running() {
			c.paused[s] = true
			signalNoWait(s, syscall.SIGSTOP)
		}
	}
	c.mu.Unlock()
	time.Sleep(d) // the fault's duration, not a synchronisation
	c.mu.Lock()
	for _, s := range nodes {
		if c.paused[s] {
			signalNoWait(s, syscall.SIGCONT)
			delete(c.paused, s)
		}
	}
	c.mu.Unlock()
	c.WaitHealthy()
}

// Migration is a slot being moved between shards. Between BeginMigration
// and Finish the source answers ASK for keys it no longer holds, and the
// other nodes still send MOVED to the source.
type Migration struct {
	c        *Cluster
	slot     int
	src, dst *Server
}

// MigrateSlot moves slot, with its keys, to the primary of shard to, the
// way redis-cli --cluster reshard does, and waits until every running node
// names the new owner. Clients that cached the old owner get MOVED.
func (c *Cluster) MigrateSlot(slot, to int) {
	c.t.Helper()
	m := c.BeginMigration(slot, to)
	m.MoveKeys(0)
	m.Finish()
}

// BeginMigration marks slot IMPORTING on the primary of shard to and
// MIGRATING on its current owner.
func (c *Cluster) BeginMigration(slot, to int) *Migration {
	c.t.Helper()
	m := &Migration{c: c, slot: slot, src: c.PrimaryForSlot(slot), dst: c.Primary(to)}
	if m.src == m.dst {
		c.t.Fatalf("redistest: slot %d is already on shard %d", slot, to)
	}
	ctx := context.Background()
	if err := m.dst.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", c.ids[m.src]).Err(); err != nil {
		c.t.Fatalf("redistest: SETSLOT IMPORTING: %v", err)
	}
	if err := m.src.Client().Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", c.ids[m.dst]).Err(); err != nil {
		c.t.Fatalf("redistest: SETSLOT MIGRATING: %v", err)
	}
	return m
}

// MoveKeys MIGRATEs up to n keys of the slot (all if n <= 0) to the
// destination and returns how many it moved.
func (m *Migration) MoveKeys(n int) int {
	c := m.c
	c.t.Helper()
	ctx := context.Background()
	moved := 0
	for n <= 0 || moved < n {
		batch := 100
		if n > 0 {
			batch = min(batch, n-moved)
		}
		keys, err := m.src.Client().ClusterGetKeysInSlot(ctx, m.slot, batch).Result()
		if err != nil {
			c.t.Fatalf("redistest: GETKEYSINSLOT: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		host, port, _ := net.SplitHostPort(m.dst.Addr())
		args := []any{"MIGRATE", host, port, "", 0, 5000}
		if c.opts.Password != "" {
			args = append(args, "AUTH", c.opts.Password)
		}
		args = append(args, "KEYS")
		for _, k := range keys {
			args = append(args, k)
		}
		// A key that expired meanwhile makes MIGRATE answer NOKEY, not an error.
		if err := m.src.Client().Do(ctx, args...).Err(); err != nil {
			c.t.Fatalf("redistest: MIGRATE: %v", err)
		}
		moved += len(keys)
	}
	return moved
}

// Finish moves the remaining keys, assigns the slot to the destination on
// every running primary (SETSLOT NODE) and waits until every running node
// names the destination as the slot's owner.
func (m *Migration) Finish() {
	c := m.c
	c.t.Helper()
	m.MoveKeys(0)
	ctx := context.Background()
	order := []*Server{m.dst, m.src}
	for _, p := range c.Primaries() {
		if p != m.dst && p != m.src {
			order = append(order, p)
		}
	}
	for _, p := range order {
		if err := p.Client().Do(ctx, "CLUSTER", "SETSLOT", m.slot, "NODE", c.ids[m.dst]).Err(); err != nil {
			c.t.Fatalf("redistest: SETSLOT NODE on %s: %v", p.Addr(), err)
		}
	}
	deadline := time.Now().Add(clusterWait)
	for _, s := range c.nodes {
		for c.live(s) {
			owner := ""
			for _, ln := range c.view(s) {
				if ln.has("master") && ln.serves(m.slot) {
					owner = ln.id
				}
			}
			if owner == c.ids[m.dst] {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("redistest: %s still sees slot %d on %s\n%s", s.Addr(), m.slot, owner, c.nodesText(s))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c.WaitHealthy()
}
