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

func (k *keyspace) roomNodes(room string) string { return k.prefix + ":rp:{" + room + "}:nodes" }
func (k *keyspace) roomShare(room, node string) string {
	return k.prefix + ":rp:{" + room + "}:node:" + node
}
func (k *keyspace) nodeRooms() string { return k.prefix + ":presence:rooms:" + k.node }

// roomOf is the room name of a room channel.
func (k *keyspace) roomOf(channel string) string { return channel[len(k.prefix)+len(":room:"):] }

// memberScript writes users' counts in this node's shares of rooms, many
// in one call (a mass exit's leaves cost one call per outbox batch, not
// one per leave): ARGV prefix, node, then room, user, count for each.
// With count 0 the user is removed, and an emptied share with it.
var memberScript = goredis.NewScript(`
local prefix, node = ARGV[1], ARGV[2]
local rooms = prefix .. ':presence:rooms:' .. node
for i = 3, #ARGV, 3 do
  local room, user, count = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local share = prefix .. ':rp:{' .. room .. '}:node:' .. node
  local nodes = prefix .. ':rp:{' .. room .. '}:nodes'
  if tonumber(count) > 0 then
    redis.call('HSET', share, user, count)
    redis.call('SADD', nodes, node)
    redis.call('SADD', rooms, room)
  else
    redis.call('HDEL', share, user)
    if redis.call('EXISTS', share) == 0 then
      redis.call('SREM', nodes, node)
      redis.call('SREM', rooms, room)
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
	users := o.rooms[room]
	if users == nil {
		users = map[string]int{}
		o.rooms[room] = users
	}
	users[user] += delta
	if users[user] <= 0 {
		delete(users, user)
		if len(users) == 0 {
			delete(o.rooms, room)
		}
	}
	o.items = append(o.items, outItem{kind: outRoomMember, channel: room, user: user})
	o.mu.Unlock()
	o.signal()
}

// queueMembers adds one script call that writes the current counts of
// items' users.
func (o *outbox) queueMembers(ctx context.Context, pipe goredis.Pipeliner, items []outItem) {
	k := &o.r.keys
	args := make([]any, 0, 2+3*len(items))
	args = append(args, k.prefix, k.node)
	o.mu.Lock()
	for _, it := range items {
		args = append(args, it.channel, it.user, o.rooms[it.channel][it.user])
	}
	o.mu.Unlock()
	pipe.EvalSha(ctx, memberScript.Hash(), nil, args...)
}

// queueShares rewrites every share of this node from rooms (a resync).
func (o *outbox) queueShares(ctx context.Context, pipe goredis.Pipeliner, rooms map[string]map[string]int) {
	k := &o.r.keys
	for room, users := range rooms {
		share := k.roomShare(room, k.node)
		pipe.Del(ctx, share)
		args := make([]any, 0, 2*len(users))
		for u, n := range users {
			args = append(args, u, n)
		}
		pipe.HSet(ctx, share, args...)
		pipe.SAdd(ctx, k.roomNodes(room), k.node)
		pipe.SAdd(ctx, k.nodeRooms(), room)
	}
}

// sharesSnapshot copies the node's shares for a resync. Called with o.mu held.
func (o *outbox) sharesSnapshot() map[string]map[string]int {
	out := make(map[string]map[string]int, len(o.rooms))
	for room, users := range o.rooms {
		c := make(map[string]int, len(users))
		for u, n := range users {
			c[u] = n
		}
		out[room] = c
	}
	return out
}

// Presence implements port.Broker: presenceScript, through readAsync
// (sharing the stream reads' bound on requests in flight).
func (r *Broker) Presence(channel string, done func(wire.Presence, error)) {
	r.readAsync(func() error {
		p, err := r.presence(r.keys.roomOf(channel))
		if err == nil {
			done(p, nil)
		}
		return err
	}, func() { done(wire.Presence{}, port.ErrUnavailable) })
}

func (r *Broker) presence(room string) (wire.Presence, error) {
	k := &r.keys
	vals, err := r.evalRead(presenceScript, []string{k.roomNodes(room)},
		k.prefix+":presence:alive:", k.prefix+":rp:{"+room+"}:node:")
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
