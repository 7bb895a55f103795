package redis

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// The presence directory, in Redis (PREFIX defaults to "websocket"):
//
//	PREFIX:presence:nodes         set: registered node ids
//	PREFIX:presence:alive:NODE    "1" with a TTL of PresenceTTL, refreshed by NODE's heartbeat
//	PREFIX:presence:node:NODE     set: users with a session on NODE
//	PREFIX:presence:user:USER     set: nodes holding a session of USER
//	PREFIX:presence:reaped:NODE   tombstone (TTL) left when NODE was reaped by another node
//
// Users are added and removed by the outbox (in order with the node's
// publishes: a user_connected is never seen before the user can be reached).
// Each node's heartbeat refreshes its alive key and reaps dead nodes: a node
// whose alive key expired is removed from every user's set, and each of its
// users is announced user_disconnected on PREFIX:broadcast, as the node would
// have done itself, in the same script, so that exactly one survivor does it
// even if several reap at once. A node that finds its own entries gone (Redis
// restarted, or it was reaped while paused) writes them again from its local
// set (the outbox's resync), announcing user_connected if it had been reaped.

// directScript publishes a direct message to the node channel of every live
// node (other than the sender's) that holds the user, and returns
// {published and heard, published and heard by nobody}. ARGV: the hub
// prefix (keyspace.hub), this node, the envelope, the publish command
// (PUBLISH, or SPUBLISH on a cluster, where the directory and the node
// channels share the hub's slot).
var directScript = goredis.NewScript(`
local prefix, self, pub = ARGV[1], ARGV[2], ARGV[4]
local sent, missed = 0, 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node ~= self and redis.call('EXISTS', prefix .. ':presence:alive:' .. node) == 1 then
    if redis.call(pub, prefix .. ':node:' .. node, ARGV[3]) > 0 then
      sent = sent + 1
    else
      missed = missed + 1
    end
  end
end
return {sent, missed}
`)

// reapScript removes dead nodes (and, when ARGV[3] names one, that node
// whatever its state: this node at start and at close) from the directory,
// publishes for each of their users the user_disconnected the dead node
// would have published (presence is per node: docs/protocol.md), and
// returns {nodes reaped, users announced, {node, room, node, room, ...}}.
// ARGV: the hub prefix, the tombstone's TTL, the forced node, the publish
// command, the rooms' prefix (PREFIX:rp:) or "" on a cluster, then the
// envelope (wire's userGone: reapArgs); the script only fills in the user
// and the node. On one Redis it deletes the reaped nodes' room presence
// shares too; on a cluster they live in other slots, so it returns the
// rooms of each reaped node (its index is kept until the shares are gone:
// clearShares) and notes the node in PREFIX:presence:clearing; a node
// noted there and not alive again has its rooms returned at every run
// until clearShares has cleared them, so a failed clear is taken up again
// at the next beat of any node.
var reapScript = goredis.NewScript(`
local prefix, ttl, forced, pub, rp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local reaped, gone, rooms = 0, 0, {}
local clearing, listed = prefix .. ':presence:clearing', {}
local function envelope(holes)
  local out = {}
  for i = 6, #ARGV do
    if i % 2 == 0 then out[#out + 1] = ARGV[i] else out[#out + 1] = holes[ARGV[i]] end
  end
  return table.concat(out)
end
local function reap(node, tomb)
  local nk = prefix .. ':presence:node:' .. node
  for _, u in ipairs(redis.call('SMEMBERS', nk)) do
    redis.call('SREM', prefix .. ':presence:user:' .. u, node)
    redis.call(pub, prefix .. ':broadcast', envelope({user = cjson.encode(u), node = cjson.encode(node)}))
    gone = gone + 1
  end
  local rk = prefix .. ':presence:rooms:' .. node
  for _, room in ipairs(redis.call('SMEMBERS', rk)) do
    if rp ~= '' then
      redis.call('DEL', rp .. '{' .. room .. '}:node:' .. node)
      redis.call('SREM', rp .. '{' .. room .. '}:nodes', node)
    else
      listed[node] = true
      rooms[#rooms + 1] = node
      rooms[#rooms + 1] = room
    end
  end
  if rp ~= '' then
    redis.call('DEL', rk)
  elseif listed[node] then
    redis.call('SADD', clearing, node)
  end
  redis.call('DEL', nk, prefix .. ':presence:alive:' .. node)
  redis.call('SREM', KEYS[1], node)
  if tomb then
    redis.call('SET', prefix .. ':presence:reaped:' .. node, '1', 'PX', ttl)
  end
end
if forced ~= '' then
  reap(forced, false)
end
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. ':presence:alive:' .. node) == 0 then
    reap(node, true)
    reaped = reaped + 1
  end
end
if rp == '' then
  for _, node in ipairs(redis.call('SMEMBERS', clearing)) do
    if not listed[node] and redis.call('EXISTS', prefix .. ':presence:alive:' .. node) == 0 then
      local left = redis.call('SMEMBERS', prefix .. ':presence:rooms:' .. node)
      if #left == 0 then
        redis.call('SREM', clearing, node)
      end
      for _, room in ipairs(left) do
        rooms[#rooms + 1] = node
        rooms[#rooms + 1] = room
      end
    end
  end
end
return {reaped, gone, rooms}
`)

// userGone is the envelope reapScript publishes for each user of a reaped
// node, with holes for the user and the node.
var userGone = wire.UserGoneTemplate()

// reapArgs are reapScript's arguments: the hub prefix, the tombstone's
// TTL, the node to reap whatever its state ("" for none), the publish
// command, the rooms' prefix, then userGone.
func reapArgs(k *keyspace, ttl time.Duration, forced string) []any {
	rp := k.prefix + ":rp:"
	if k.cluster {
		rp = ""
	}
	args := []any{k.hub, ttl.Milliseconds(), forced, k.publishCommand(), rp}
	for _, p := range userGone.Parts {
		args = append(args, p)
	}
	return args
}

// loadScripts loads the outbox's scripts into Redis's script cache (of
// every primary, on a cluster).
func loadScripts(ctx context.Context, c goredis.UniversalClient) error {
	return loadScript(ctx, c, directScript, reapScript, memberScript, appendScript)
}

// loadScript loads scripts on c's Redis, or on every primary of a cluster.
func loadScript(ctx context.Context, c goredis.UniversalClient, scripts ...*goredis.Script) error {
	load := func(ctx context.Context, c goredis.Scripter) error {
		for _, s := range scripts {
			if err := s.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if cc, ok := c.(*goredis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, c *goredis.Client) error { return load(ctx, c) })
	}
	return load(ctx, c)
}

// presence is the heartbeat goroutine: it keeps this node's alive key fresh,
// notices when its entries are gone (and has the outbox rewrite them), reaps
// dead nodes, and remembers which nodes are alive (for the outbox's quorum
// after a fault).
type presence struct {
	r      *Broker
	kickCh chan struct{}            // capacity 1: beat now
	alive  atomic.Pointer[[]string] // other live nodes, as of the last intact heartbeat

	client goredis.UniversalClient // owned by the heartbeat goroutine
}

func newPresence(r *Broker) *presence {
	p := &presence{r: r, kickCh: make(chan struct{}, 1)}
	p.alive.Store(&[]string{})
	return p
}

// kick asks for a heartbeat now (after the subscriptions recovered). Any
// goroutine; never blocks.
func (p *presence) kick() {
	select {
	case p.kickCh <- struct{}{}:
	default:
	}
}

// peers returns the other nodes alive at the last intact heartbeat.
func (p *presence) peers() []string { return *p.alive.Load() }

func (p *presence) run() {
	every := max(p.r.cfg.PresenceTTL/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	defer func() {
		if p.client != nil {
			_ = p.client.Close()
		}
	}()
	p.beat()
	for {
		select {
		case <-p.r.ctx.Done():
			return
		case <-t.C:
		case <-p.kickCh:
		}
		p.beat()
	}
}

// beat is one heartbeat.
func (p *presence) beat() {
	if p.client == nil {
		p.client = p.r.newClient("presence")
	}
	k := &p.r.keys
	ctx, cancel := context.WithTimeout(p.r.ctx, p.r.cfg.CommandTimeout)
	defer cancel()
	pipe := p.client.Pipeline()
	had := pipe.PExpire(ctx, k.alive, p.r.cfg.PresenceTTL)
	tomb := pipe.Exists(ctx, k.reaped)
	nodes := pipe.SMembers(ctx, k.nodes)
	reap := reapScript.EvalSha(ctx, pipe, []string{k.nodes}, reapArgs(k, p.r.cfg.PresenceTTL, "")...)
	if _, err := pipe.Exec(ctx); err != nil {
		if goredis.HasErrorPrefix(reap.Err(), "NOSCRIPT") && had.Err() == nil {
			err = loadScripts(ctx, p.client)
		}
		if err != nil && p.r.ctx.Err() == nil {
			p.r.stats.heartbeatErrs.Add(1)
			p.r.log.Debug("redis presence heartbeat failed", keyErr, err)
			_ = p.client.Close()
			p.client = nil
		}
		if had.Err() != nil {
			return
		}
	}
	others := slices.DeleteFunc(nodes.Val(), func(n string) bool { return n == k.node })
	if !had.Val() {
		// Our alive key is gone: Redis lost its data (then the registered
		// nodes are only those that re-registered already: keep the ones
		// known before), or we were reaped, or we just started.
		p.r.out.queueResync(tomb.Val() > 0)
		for _, n := range p.peers() {
			if !slices.Contains(others, n) {
				others = append(others, n)
			}
		}
	}
	p.alive.Store(&others)
	if reaped, gone, rooms, err := reapResult(reap); err == nil {
		if reaped > 0 {
			p.r.stats.reaped.Add(reaped)
			p.r.stats.vanished.Add(gone)
			p.r.log.Info("redis presence: reaped dead nodes", "nodes", reaped, "users_disconnected", gone)
		}
		if len(rooms) > 0 {
			_ = clearShares(ctx, p.client, k, rooms)
		}
	}
}
