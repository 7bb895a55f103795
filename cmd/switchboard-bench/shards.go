package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisShards is what the Redis primaries the nodes share did during a
// room or broadcast run's measured phase: the one Redis of --redis, or
// every primary of a Redis Cluster. On a small machine a cluster cannot
// show its parallel speed-up, so these are the figures that predict it:
// what one message costs a shard, and how evenly rooms and messages
// spread over the shards.
type RedisShards struct {
	Shards []ShardStats `json:"shards"`
	// CPUPerMessage is all primaries' CPU per message the publishers sent,
	// CPUPerDelivery per delivery received, in microseconds.
	CPUPerMessage  float64 `json:"cpu_us_per_message"`
	CPUPerDelivery float64 `json:"cpu_us_per_delivery"`
	// The spreads are max/mean over the shards (1: even) of the messages
	// published, of this run's rooms, of the keys after the phase and of
	// the CPU; 0 when there was nothing to spread.
	MessagesSpread float64 `json:"messages_max_mean"`
	RoomsSpread    float64 `json:"rooms_max_mean"`
	KeysSpread     float64 `json:"keys_max_mean"`
	CPUSpread      float64 `json:"cpu_max_mean"`
}

// ShardStats is one primary's share of a measured phase.
type ShardStats struct {
	Addr string `json:"addr"`
	// CPU is INFO CPU's used_cpu_sys + used_cpu_user after minus before,
	// in microseconds: the whole server's, whoever else it served.
	CPU float64 `json:"cpu_us"`
	// Messages is the PUBLISH and SPUBLISH calls (from scripts too) during
	// the phase: the room publications the shard carried, plus the nodes'
	// probes. CPUPerMessage is CPU / Messages.
	Messages      int64   `json:"messages"`
	CPUPerMessage float64 `json:"cpu_us_per_message,omitempty"`
	// Keys is DBSIZE after the phase, KeysAdded its growth during it.
	Keys      int64 `json:"keys"`
	KeysAdded int64 `json:"keys_added"`
	// Rooms is the history streams of this run's rooms on the shard (0
	// with --history-size 0).
	Rooms int64 `json:"rooms"`
}

// redisSampleWait bounds sampling the primaries (a SCAN of 10,000 rooms'
// keys takes a few dozen round trips).
const redisSampleWait = 30 * time.Second

// shardProbe samples the primaries around a measured phase.
type shardProbe struct {
	addrs   []string
	clients []*goredis.Client
	before  []shardSample
}

type shardSample struct {
	cpu      time.Duration
	messages int64
	keys     int64
}

// openShards connects to the primaries the started nodes use and samples
// them; nil without Redis.
func openShards(ctx context.Context, o *options) (*shardProbe, error) {
	if !o.clustered() && o.redisURL == "" {
		return nil, nil
	}
	base := &goredis.Options{}
	if o.redisURL != "" {
		var err error
		if base, err = goredis.ParseURL(o.redisURL); err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
	}
	addrs := []string{base.Addr}
	if o.clustered() {
		var err error
		if addrs, err = clusterPrimaries(ctx, base, o.redisCluster); err != nil {
			return nil, err
		}
	}
	p := &shardProbe{addrs: addrs}
	for _, a := range addrs {
		opt := *base
		opt.Addr = a
		if o.clustered() {
			opt.DB = 0
		}
		p.clients = append(p.clients, goredis.NewClient(&opt))
	}
	var err error
	if p.before, err = p.sample(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// clusterPrimaries asks the first seed that answers for the primaries that
// serve slots (CLUSTER NODES), in the order of their first slot.
func clusterPrimaries(ctx context.Context, base *goredis.Options, seeds []string) ([]string, error) {
	var lastErr error
	for _, seed := range seeds {
		opt := *base
		opt.Addr, opt.DB = seed, 0
		c := goredis.NewClient(&opt)
		text, err := c.ClusterNodes(ctx).Result()
		c.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return parsePrimaries(text)
	}
	return nil, fmt.Errorf("redis cluster: CLUSTER NODES: %w", lastErr)
}

// parsePrimaries reads the primaries that serve slots from CLUSTER NODES
// (id addr@bus flags primary ping pong epoch link slot...).
func parsePrimaries(text string) ([]string, error) {
	type primary struct {
		addr  string
		first int
	}
	var ps []primary
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		lo, _, _ := strings.Cut(f[8], "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			continue // an importing or migrating mark: not a slot range
		}
		ps = append(ps, primary{addr, first})
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("redis cluster: no primary with slots in CLUSTER NODES:\n%s", text)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].first < ps[j].first })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.addr
	}
	return out, nil
}

func (p *shardProbe) sample(ctx context.Context) ([]shardSample, error) {
	out := make([]shardSample, len(p.clients))
	for i, c := range p.clients {
		info, err := c.Info(ctx, "cpu", "commandstats").Result()
		if err != nil {
			return nil, fmt.Errorf("redis %s INFO: %w", p.addrs[i], err)
		}
		if out[i].cpu, err = parseRedisCPU(info); err != nil {
			return nil, err
		}
		cmds := parseCommandStats(info)
		out[i].messages = cmds["publish"].Calls + cmds["spublish"].Calls
		if out[i].keys, err = c.DBSize(ctx).Result(); err != nil {
			return nil, fmt.Errorf("redis %s DBSIZE: %w", p.addrs[i], err)
		}
	}
	return out, nil
}

// finish samples the primaries again and counts the streams of runID's
// rooms on each; sent and received are the phase's messages and
// deliveries.
func (p *shardProbe) finish(ctx context.Context, runID string, sent, received int64) (*RedisShards, error) {
	after, err := p.sample(ctx)
	if err != nil {
		return nil, err
	}
	st := &RedisShards{}
	var cpu, msgs, rooms, keys []float64
	for i, a := range after {
		b := p.before[i]
		s := ShardStats{Addr: p.addrs[i], CPU: float64(a.cpu-b.cpu) / float64(time.Microsecond),
			Messages: a.messages - b.messages, Keys: a.keys, KeysAdded: a.keys - b.keys}
		if s.Messages > 0 {
			s.CPUPerMessage = s.CPU / float64(s.Messages)
		}
		// Room streams are PREFIX:stream:ROOM, or PREFIX:stream:{TAG}:ROOM
		// on a cluster; this run's rooms are bench-RUNID-N.
		if s.Rooms, err = countKeys(ctx, p.clients[i], "*:stream:*bench-"+runID+"-*"); err != nil {
			return nil, fmt.Errorf("redis %s SCAN: %w", p.addrs[i], err)
		}
		st.Shards = append(st.Shards, s)
		cpu, msgs = append(cpu, s.CPU), append(msgs, float64(s.Messages))
		rooms, keys = append(rooms, float64(s.Rooms)), append(keys, float64(s.Keys))
	}
	total := sumFloat(cpu)
	if sent > 0 {
		st.CPUPerMessage = total / float64(sent)
	}
	if received > 0 {
		st.CPUPerDelivery = total / float64(received)
	}
	st.CPUSpread, st.MessagesSpread = maxMean(cpu), maxMean(msgs)
	st.RoomsSpread, st.KeysSpread = maxMean(rooms), maxMean(keys)
	return st, nil
}

func (p *shardProbe) close() {
	for _, c := range p.clients {
		_ = c.Close()
	}
}

// countKeys counts the keys matching pattern on one server with SCAN.
func countKeys(ctx context.Context, c *goredis.Client, pattern string) (int64, error) {
	var n int64
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, err
		}
		n += int64(len(keys))
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// maxMean is max(xs) / mean(xs), 0 when they add up to 0.
func maxMean(xs []float64) float64 {
	t := sumFloat(xs)
	if t <= 0 {
		return 0
	}
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m / (t / float64(len(xs)))
}

func sumFloat(xs []float64) float64 {
	var t float64
	for _, x := range xs {
		t += x
	}
	return t
}

// redisBefore opens the shard probe of a room or broadcast run; nil (and a
// note on stderr) when Redis cannot be sampled, which costs the run its
// Redis figures only.
func (r *run) redisBefore(ctx context.Context) *shardProbe {
	if r.t.kind != kindSwitchboard {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisSampleWait)
	defer cancel()
	p, err := openShards(ctx, r.o)
	if err != nil && !r.o.quiet {
		fmt.Fprintf(r.log, "redis figures left out: %v\n", err)
	}
	return p
}

// redisAfter fills res.Redis from p and closes it.
func (r *run) redisAfter(ctx context.Context, p *shardProbe, res *Result) {
	if p == nil {
		return
	}
	defer p.close()
	// The run's time may be up (a truncated run): its figures still count.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisSampleWait)
	defer cancel()
	st, err := p.finish(ctx, r.runID, res.Sent, res.Received)
	if err != nil && !r.o.quiet {
		fmt.Fprintf(r.log, "redis figures left out: %v\n", err)
	}
	res.Redis = st
}

// summarizeShards sets the summary's Redis figures: medians over the runs.
func summarizeShards(s *Summary, runs []*Result) {
	pick := func(f func(*RedisShards) float64) *Stat {
		var xs []float64
		for _, r := range runs {
			if r.Redis != nil && f(r.Redis) > 0 {
				xs = append(xs, f(r.Redis))
			}
		}
		return stat(xs)
	}
	s.RedisCPUPerMessage = pick(func(st *RedisShards) float64 { return st.CPUPerMessage })
	s.ShardMessagesSpread = pick(func(st *RedisShards) float64 { return st.MessagesSpread })
	s.ShardRoomsSpread = pick(func(st *RedisShards) float64 { return st.RoomsSpread })
	s.ShardKeysSpread = pick(func(st *RedisShards) float64 { return st.KeysSpread })
}

// writeShards appends a run's Redis figures to its line.
func writeShards(b *strings.Builder, st *RedisShards) {
	fmt.Fprintf(b, " redis-cpu=%.2fus/message %.3fus/delivery spread(max/mean) messages=%.2f rooms=%.2f keys=%.2f cpu=%.2f shards:",
		st.CPUPerMessage, st.CPUPerDelivery, st.MessagesSpread, st.RoomsSpread, st.KeysSpread, st.CPUSpread)
	for _, sh := range st.Shards {
		fmt.Fprintf(b, " [%s cpu=%.0fus messages=%d %.2fus/message keys=%d rooms=%d]", sh.Addr, sh.CPU, sh.Messages, sh.CPUPerMessage, sh.Keys, sh.Rooms)
	}
}
