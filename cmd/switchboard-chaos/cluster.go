package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clusterPartitions is the nodes' --redis-partitions on the cluster
// topology. Fewer than the default 128: the suite's six rooms then share
// partitions (one sharded subscription carries several rooms, as it does
// in production with thousands), and each node holds 17 pub/sub
// connections instead of 129, which keeps a race-built node's start and
// recovery within the suite's bounds on two shared cores.
const clusterPartitions = 16

// clusterNodeTimeout is cluster-node-timeout, as cluster/redistest sets
// it: a SIGKILLed primary is replaced within about 3 s.
const clusterNodeTimeout = 1500 * time.Millisecond

// clusterWait bounds every wait for the cluster to settle.
const clusterWait = 30 * time.Second

// clusterTopology is a Redis Cluster of three shards, a primary and a
// replica each (six redis-server processes with cluster-enabled yes,
// joined by redis-cli --cluster create), as cluster/redistest's
// StartCluster builds it. Every node is given every address
// (--redis-cluster). shards[i] are the members of the i-th slot range,
// fixed at creation (replica migration is off); which member is primary
// changes with failovers. The suite's questions are asked of every
// primary. Owned by the controller.
type clusterTopology struct {
	prefix string // the run's channel prefix: the hub's tag is {prefix}
	nodes  []*redisProc
	shards [][]*redisProc
	ids    map[*redisProc]string // CLUSTER MYID, kept across restarts (nodes.conf)
}

func newClusterTopology(dir, prefix string) (*clusterTopology, error) {
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, fmt.Errorf("redis-cli not found (apt-get install redis-tools): %w", err)
	}
	t := &clusterTopology{prefix: prefix, ids: map[*redisProc]string{}}
	for i := range 6 {
		name := fmt.Sprintf("redis-c%d", i+1)
		r, err := newRedisProc(filepath.Join(dir, name), name)
		if err != nil {
			return nil, err
		}
		r.extra = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(r.dir, "nodes.conf"),
			"--cluster-node-timeout", strconv.FormatInt(clusterNodeTimeout.Milliseconds(), 10),
			// A replica may always take over: its data's age does not matter here.
			"--cluster-replica-validity-factor", "0",
			// Shards keep their members, so a shard names the same processes.
			"--cluster-allow-replica-migration", "no",
			// The default waits 5 s before every full sync (a restarted node's).
			"--repl-diskless-sync-delay", "0",
		}
		t.nodes = append(t.nodes, r)
	}
	return t, nil
}

func (t *clusterTopology) kind() string { return topoCluster }

// start runs the six servers, creates the cluster (1 replica per primary)
// and waits until it is healthy.
func (t *clusterTopology) start(ctx context.Context) error {
	for _, r := range t.nodes {
		if err := os.MkdirAll(r.dir, 0o755); err != nil {
			return err
		}
		if err := r.start(ctx); err != nil {
			return err
		}
	}
	args := append([]string{"--cluster", "create"}, t.addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, "redis-cli", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := t.learnShards(ctx); err != nil {
		return err
	}
	_, err := t.waitHealthy(ctx, clusterWait)
	return err
}

func (t *clusterTopology) addrs() []string {
	out := make([]string, len(t.nodes))
	for i, r := range t.nodes {
		out[i] = r.addr()
	}
	return out
}

func (t *clusterTopology) nodeArgs() []string {
	return []string{"--redis-cluster", strings.Join(t.addrs(), ","), "--redis-partitions", strconv.Itoa(clusterPartitions)}
}

// learnShards records the node ids and which replica follows which
// primary, shards ordered by their first slot.
func (t *clusterTopology) learnShards(ctx context.Context) error {
	byID := map[string]*redisProc{}
	for _, r := range t.nodes {
		id, err := r.admin.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("CLUSTER MYID on %s: %w", r.name, err)
		}
		t.ids[r], byID[id] = id, r
	}
	var view []clusterNodeLine
	if _, ok := waitFor(ctx, clusterWait, func() bool {
		for _, r := range t.nodes {
			v := t.view(ctx, r)
			primaries, replicas := 0, 0
			for _, ln := range v {
				switch {
				case ln.has("master") && len(ln.slots) > 0:
					primaries++
				case ln.has("slave") && ln.master != "-":
					replicas++
				}
			}
			if len(v) != len(t.nodes) || primaries != 3 || replicas != 3 {
				return false
			}
			view = v
		}
		return true
	}); !ok {
		return fmt.Errorf("the cluster did not form within %v", clusterWait)
	}
	for _, ln := range view {
		if !ln.has("master") || len(ln.slots) == 0 {
			continue
		}
		members := []*redisProc{byID[ln.id]}
		for _, r := range view {
			if r.master == ln.id {
				members = append(members, byID[r.id])
			}
		}
		t.shards = append(t.shards, members)
	}
	slices.SortFunc(t.shards, func(a, b []*redisProc) int {
		return t.firstSlot(view, a[0]) - t.firstSlot(view, b[0])
	})
	return nil
}

func (t *clusterTopology) firstSlot(view []clusterNodeLine, r *redisProc) int {
	for _, ln := range view {
		if ln.id == t.ids[r] && len(ln.slots) > 0 {
			return ln.slots[0][0]
		}
	}
	return -1
}

// shardPrimary is the running member of shard i that says it is a
// primary (nil if none).
func (t *clusterTopology) shardPrimary(ctx context.Context, i int) *redisProc {
	for _, r := range t.shards[i] {
		if r.running() && r.role(ctx, "master", "") {
			return r
		}
	}
	return nil
}

// shardReplica is a running member of shard i other than p.
func (t *clusterTopology) shardReplica(i int, p *redisProc) *redisProc {
	for _, r := range t.shards[i] {
		if r != p && r.running() {
			return r
		}
	}
	return nil
}

func (t *clusterTopology) primaries(ctx context.Context) ([]*redisProc, error) {
	out := make([]*redisProc, len(t.shards))
	for i := range t.shards {
		if out[i] = t.shardPrimary(ctx, i); out[i] == nil {
			return nil, fmt.Errorf("shard %d has no primary", i)
		}
	}
	return out, nil
}

// hubShard is the shard that serves the hub's tag {prefix} (chat, connect
// events, direct messages, the presence directory): every node has a
// pub/sub connection there.
func (t *clusterTopology) hubShard(ctx context.Context) (int, error) {
	return t.shardForSlot(ctx, keySlot(t.prefix))
}

// shardForSlot is the shard whose primary serves slot now, as its first
// running node sees it.
func (t *clusterTopology) shardForSlot(ctx context.Context, slot int) (int, error) {
	for _, r := range t.nodes {
		if !r.running() {
			continue
		}
		for _, ln := range t.view(ctx, r) {
			if ln.has("master") && !ln.failing() && ln.serves(slot) {
				for i, members := range t.shards {
					if slices.ContainsFunc(members, func(m *redisProc) bool { return t.ids[m] == ln.id }) {
						return i, nil
					}
				}
			}
		}
		break
	}
	return -1, fmt.Errorf("no primary serves slot %d", slot)
}

// primary is the primary of the hub's shard: redis-pause and
// redis-pubsub-kill act there, on a connection of every node.
func (t *clusterTopology) primary(ctx context.Context) (*redisProc, error) {
	i, err := t.hubShard(ctx)
	if err != nil {
		return nil, err
	}
	if p := t.shardPrimary(ctx, i); p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("shard %d has no primary", i)
}

// subscriptions sums PUBSUB SHARDCHANNELS/SHARDNUMSUB (and plain
// channels, which the nodes should not use here) over the primaries, for
// the run's channels: PREFIX:... (partitions, their probes) and
// {PREFIX}:... (the hub's).
func (t *clusterTopology) subscriptions(ctx context.Context, prefix string) (map[string]int64, error) {
	ps, err := t.primaries(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, p := range ps {
		for _, pre := range []string{prefix, "{" + prefix + "}"} {
			subs, err := p.subscriptions(ctx, pre)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			for ch, n := range subs {
				out[ch] += n
			}
		}
	}
	return out, nil
}

// channels lists the sharded channels with subscribers that match pattern
// on any primary. A room has no channel of its own here (its partition's
// carries it): callers map rooms with roomChannel.
func (t *clusterTopology) channels(ctx context.Context, pattern string) ([]string, error) {
	ps, err := t.primaries(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		chs, err := p.admin.PubSubShardChannels(ctx, pattern).Result()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		out = append(out, chs...)
	}
	slices.Sort(out)
	return out, nil
}

// keys scans every primary. The presence directory is under the hub's tag
// here: PREFIX:presence:... is asked as {PREFIX}:presence:....
func (t *clusterTopology) keys(ctx context.Context, pattern string) ([]string, error) {
	if pre, rest, ok := strings.Cut(pattern, ":presence:"); ok && !strings.HasPrefix(pre, "{") {
		pattern = "{" + pre + "}:presence:" + rest
	}
	ps, err := t.primaries(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range ps {
		ks, err := p.keys(ctx, pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		out = append(out, ks...)
	}
	slices.Sort(out)
	return out, nil
}

// roomChannel is the sharded channel of room's partition.
func (t *clusterTopology) roomChannel(prefix, room string) string {
	return "shard:" + prefix + ":part:" + partitionTag(room, clusterPartitions)
}

func (t *clusterTopology) close() {
	for _, r := range t.nodes {
		r.close()
	}
}

// roomSubscribed reports whether n subscribers of a room's channel in
// topology t show that all its hosts nodes listen: exactly hosts on the
// room's own channel; at least hosts on a cluster, where the partition's
// channel also counts the nodes of its other rooms.
func roomSubscribed(t redisTopology, n int64, hosts int) bool {
	if t.kind() == topoCluster {
		return n >= int64(hosts)
	}
	return n == int64(hosts)
}
