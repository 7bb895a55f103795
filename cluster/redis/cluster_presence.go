package redis

import (
	"context"

	goredis "github.com/redis/go-redis/v9"
)

// reapResult reads reapScript's reply: nodes reaped, users announced, and
// (on a cluster) the rooms whose shares of reaped nodes are left to clear,
// as node, room pairs.
func reapResult(cmd *goredis.Cmd) (reaped, gone int64, rooms []string, err error) {
	vals, err := cmd.Slice()
	if err != nil {
		return 0, 0, nil, err
	}
	if len(vals) < 2 {
		return 0, 0, nil, errBadReply
	}
	reaped, _ = vals[0].(int64)
	gone, _ = vals[1].(int64)
	if len(vals) > 2 {
		list, _ := vals[2].([]any)
		for _, v := range list {
			s, _ := v.(string)
			rooms = append(rooms, s)
		}
	}
	return reaped, gone, rooms, nil
}

// clearShares deletes, on a cluster, the room presence shares of reaped
// nodes (node, room pairs, from reapScript), each in its room's slot, and
// then the nodes' room indexes and their notes in PREFIX:presence:clearing:
// an index outlives its shares, so after a failure here the next run of
// reapScript, on any node, returns them again. Until then a dead node's
// shares are not counted: a presence query reads only live nodes' shares.
func clearShares(ctx context.Context, c goredis.UniversalClient, k *keyspace, pairs []string) error {
	if len(pairs)%2 != 0 {
		return errBadReply
	}
	pipe := c.Pipeline()
	nodes := map[string]bool{}
	for i := 0; i+1 < len(pairs); i += 2 {
		node, room := pairs[i], pairs[i+1]
		nodes[node] = true
		pipe.Del(ctx, k.roomShare(room, node))
		pipe.SRem(ctx, k.roomNodes(room), node)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	// The nodes' indexes and their note in the clearing set go together,
	// in the hub's slot.
	pipe = c.Pipeline()
	for node := range nodes {
		pipe.Del(ctx, k.hub+":presence:rooms:"+node)
		pipe.SRem(ctx, k.hub+":presence:clearing", node)
	}
	_, err := pipe.Exec(ctx)
	return err
}
