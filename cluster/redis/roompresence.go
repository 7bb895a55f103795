package redis

import (
	"context"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Room presence on Redis (docs/protocol.md, section 7). Each node writes
// its own share of each room it has members in: a hash
// PREFIX:rp:{ROOM}:node:NODE of user -> member connections, the node in
// the room's set PREFIX:rp:{ROOM}:nodes, and the room in the node's index
// PREFIX:presence:rooms:NODE. A query is one script, one round trip: it
// sums the shares of the room's nodes whose liveness key
// (PREFIX:presence:alive:NODE, the directory's) is there, so a node that
// died without a word drops out once that key expired (--presence-ttl);
// the reaper then deletes its shares, as does the node itself when it
// starts again with the same id.
//
// The outbox writes a share as the node's current count (read when the
// command is sent, not when it was queued), so that a resync, which
// rewrites every share from the node's own counts after Redis lost them,
// and the commands queued behind it agree in any order.

func (k *keyspace) roomNodes(room string) string { return k.roomShares(room) + "nodes" }
func (k *keyspace) roomShare(room, node string) string {
	return k.roomShares(room) + "node:" + node
}

// roomShares is what the room's presence keys start with:
// PREFIX:rp:{ROOM}: on one Redis, PREFIX:rp:{TAG}:{ROOM}: on a cluster.
func (k *keyspace) roomShares(room string) string {
	return k.prefix + ":rp:" + k.roomTag(room) + "{" + room + "}:"
}
func (k *keyspace) nodeRooms() string { return k.hub + ":presence:rooms:" + k.node }

// roomOf is the room name of a room channel.
func (k *keyspace) roomOf(channel string) string { return channel[len(k.prefix)+len(":room:"):] }

// memberScript writes users' counts in this node's shares of rooms, many
// in one call (a mass exit's leaves cost one call per outbox batch, not
// one per leave): ARGV the shares' prefix (PREFIX:rp:, or on a cluster
// PREFIX:rp:{TAG}: of the one partition of the call's rooms), node, the
// node's room index (HUB:presence:rooms:NODE; "" on a cluster, where the
// outbox writes it in its own slot), then room, user, count for each.
// With count 0 the user is removed, and an emptied share with it.
var memberScript = goredis.NewScript(`
local rp, node, rooms = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV, 3 do
  local room, user, count = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local share = rp .. '{' .. room .. '}:node:' .. node
  local nodes = rp .. '{' .. room .. '}:nodes'
  if tonumber(count) > 0 then
    redis.call('HSET', share, user, count)
    redis.call('SADD', nodes, node)
    if rooms ~= '' then redis.call('SADD', rooms, room) end
  else
    redis.call('HDEL', share, user)
    if redis.call('EXISTS', share) == 0 then
      redis.call('SREM', nodes, node)
      if rooms ~= '' then redis.call('SREM', rooms, room) end
    end
  end
end
return 1
`)

// presenceScript reads a room's shares: KEYS the room's nodes; ARGV the
// alive-key prefix (PREFIX:presence:alive:), the share prefix
// (PREFIX:rp:{ROOM}:node:). It returns each live node's share as it is
// (user, connections, user, ...); the node sums them, so that a large
// room's query costs Redis its reads, not a Lua table of its members.
var presenceScript = goredis.NewScript(`
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. node) == 1 then
    out[#out + 1] = redis.call('HGETALL', ARGV[2] .. node)
  end
end
return out
`)

// livePresenceScript is presenceScript on a cluster, where the liveness
// keys are in the directory's slot: KEYS the room's nodes; ARGV the share
// prefix, then the nodes that were alive (liveNodesScript) a moment ago.
var livePresenceScript = goredis.NewScript(`
local live = {}
for i = 2, #ARGV do live[ARGV[i]] = true end
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if live[node] then
    out[#out + 1] = redis.call('HGETALL', ARGV[1] .. node)
  end
end
return out
`)

// liveNodesScript lists the registered nodes whose liveness key is there:
// KEYS the registered nodes; ARGV the alive-key prefix.
var liveNodesScript = goredis.NewScript(`
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. node) == 1 then out[#out + 1] = node end
end
return out
`)

// clusterPresence reads a room's live shares on a cluster in two steps, in
// two slots: the live nodes from the directory, then their shares.
func (r *Broker) clusterPresence(room string) ([]any, error) {
	k := &r.keys
	nodes, err := r.evalRead(liveNodesScript, []string{k.nodes}, k.aliveKey(""))
	if err != nil {
		return nil, err
	}
	args := append([]any{k.roomShare(room, "")}, nodes...)
	return r.evalRead(livePresenceScript, []string{k.roomNodes(room)}, args...)
}

// RoomMember implements port.Broker.
func (r *Broker) RoomMember(channel, user string, delta int) {
	if r.running.Load() {
		r.out.roomMember(r.keys.roomOf(channel), user, delta)
	}
}

// roomMember counts the change in the node's own view of its shares and
// queues the write of user's count. Unbounded, like presence: one per
// join and leave. Any goroutine.
func (o *outbox) roomMember(room, user string, delta int) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	k := roomUser{room, user}
	was := o.rooms[k]
	switch now := was + delta; {
	case now > 0:
		o.rooms[k] = now
		if was <= 0 {
			o.roomUsers[room]++
		}
	case was > 0:
		delete(o.rooms, k)
		if o.roomUsers[room]--; o.roomUsers[room] <= 0 {
			delete(o.roomUsers, room)
		}
	}
	o.add(outItem{kind: outRoomMember, channel: room, user: user})
	o.mu.Unlock()
	o.signal()
}

// queueMembers adds the script calls that write the current counts of
// items' users (one call; on a cluster one per partition, and the node's
// room index in the directory's slot) and returns them.
func (o *outbox) queueMembers(ctx context.Context, b *batchPipes, items []outItem) []goredis.Cmder {
	k := &o.r.keys
	var cmds []goredis.Cmder
	o.mu.Lock()
	defer o.mu.Unlock()
	if !k.cluster {
		args := make([]any, 0, 3+3*len(items))
		args = append(args, k.prefix+":rp:", k.node, k.nodeRooms())
		for _, it := range items {
			args = append(args, it.channel, it.user, o.rooms[roomUser{it.channel, it.user}])
		}
		return append(cmds, b.at(k.nodes).EvalSha(ctx, memberScript.Hash(), nil, args...))
	}
	byPart := map[int][]any{}
	first := map[int]string{}
	indexed := map[string]bool{}
	for _, it := range items {
		p := k.partOf(it.channel)
		if _, ok := first[p]; !ok {
			first[p] = it.channel
			byPart[p] = []any{k.prefix + ":rp:" + k.parts[p] + ":", k.node, ""}
		}
		byPart[p] = append(byPart[p], it.channel, it.user, o.rooms[roomUser{it.channel, it.user}])
		indexed[it.channel] = true
	}
	for p, args := range byPart {
		nodes := k.roomNodes(first[p])
		cmds = append(cmds, b.at(nodes).EvalSha(ctx, memberScript.Hash(), []string{nodes}, args...))
	}
	hub := b.at(k.nodes)
	for room := range indexed {
		if o.roomUsers[room] > 0 {
			cmds = append(cmds, hub.SAdd(ctx, k.nodeRooms(), room))
		} else {
			cmds = append(cmds, hub.SRem(ctx, k.nodeRooms(), room))
		}
	}
	return cmds
}

// queueShares rewrites every share of this node from rooms (a resync) and
// returns the commands.
func (o *outbox) queueShares(ctx context.Context, b *batchPipes, rooms map[string]map[string]int) []goredis.Cmder {
	k := &o.r.keys
	var cmds []goredis.Cmder
	for room, users := range rooms {
		share := k.roomShare(room, k.node)
		pipe := b.at(share)
		cmds = append(cmds, pipe.Del(ctx, share))
		args := make([]any, 0, 2*len(users))
		for u, n := range users {
			args = append(args, u, n)
		}
		cmds = append(cmds, pipe.HSet(ctx, share, args...), pipe.SAdd(ctx, k.roomNodes(room), k.node),
			b.at(k.nodes).SAdd(ctx, k.nodeRooms(), room))
	}
	return cmds
}

// sharesSnapshot copies the node's shares for a resync. Called with o.mu held.
func (o *outbox) sharesSnapshot() map[string]map[string]int {
	out := make(map[string]map[string]int, len(o.roomUsers))
	for k, n := range o.rooms {
		users := out[k.room]
		if users == nil {
			users = make(map[string]int, o.roomUsers[k.room])
			out[k.room] = users
		}
		users[k.user] = n
	}
	return out
}

// Presence implements port.Broker: presenceScript, through readAsync
// (a client's read: it shares the bound on clients' reads in flight).
func (r *Broker) Presence(channel string, done func(wire.Presence, error)) {
	r.readAsync(true, func() error {
		p, err := r.presence(r.keys.roomOf(channel))
		if err == nil {
			done(p, nil)
		}
		return err
	}, func() { done(wire.Presence{}, port.ErrUnavailable) })
}

func (r *Broker) presence(room string) (wire.Presence, error) {
	k := &r.keys
	var vals []any
	var err error
	if k.cluster {
		vals, err = r.clusterPresence(room)
	} else {
		vals, err = r.evalRead(presenceScript, []string{k.roomNodes(room)},
			k.aliveKey(""), k.roomShare(room, ""))
	}
	if err != nil {
		return wire.Presence{}, err
	}
	size := 0
	for _, share := range vals {
		kv, _ := share.([]any)
		size = max(size, len(kv)/2)
	}
	members := make(map[string]int, size)
	for _, share := range vals {
		kv, _ := share.([]any)
		for i := 0; i+1 < len(kv); i += 2 {
			u, _ := kv[i].(string)
			s, _ := kv[i+1].(string)
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				continue
			}
			members[u] += n
		}
	}
	r.stats.presenceQueries.Add(1)
	return wire.NewPresence(members), nil
}
