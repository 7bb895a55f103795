package redis

import (
	"context"
	"errors"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// queue adds the item's commands to the batch's pipelines and returns them.
func (o *outbox) queue(ctx context.Context, b *batchPipes, it *outItem, users []string, shares map[string]map[string]int) []goredis.Cmder {
	k := &o.r.keys
	var cmds []goredis.Cmder
	add := func(c goredis.Cmder) { cmds = append(cmds, c) }
	hub := b.at(k.nodes) // the directory's (and the hub channels') slot
	switch it.kind {
	case outPublish:
		ch := k.wireChannel(it.channel)
		if k.cluster {
			add(b.at(ch).SPublish(ctx, ch, it.data))
		} else {
			add(b.at(ch).Publish(ctx, ch, it.data))
		}
	case outDirect:
		add(hub.EvalSha(ctx, directScript.Hash(), []string{k.userKey(it.user)}, k.hub, k.node, it.data, k.publishCommand()))
	case outAppend:
		meta, stream := k.streamKeys(it.channel)
		add(b.at(meta).EvalSha(ctx, appendScript.Hash(), []string{meta, stream}, o.appendArgs(it)...))
	case outOnline:
		add(hub.SAdd(ctx, k.nodeUsers, it.user))
		add(hub.SAdd(ctx, k.userKey(it.user), k.node))
	case outOffline:
		add(hub.SRem(ctx, k.nodeUsers, it.user))
		add(hub.SRem(ctx, k.userKey(it.user), k.node))
	case outReapSelf:
		add(hub.EvalSha(ctx, reapScript.Hash(), []string{k.nodes}, reapArgs(k, o.r.cfg.PresenceTTL, k.node)...))
	case outResync:
		add(hub.Del(ctx, k.nodeUsers))
		for chunk := range slices.Chunk(users, 1000) {
			args := make([]any, len(chunk))
			for i, u := range chunk {
				args[i] = u
			}
			add(hub.SAdd(ctx, k.nodeUsers, args...))
		}
		for _, u := range users {
			add(hub.SAdd(ctx, k.userKey(u), k.node))
		}
		cmds = append(cmds, o.queueShares(ctx, b, shares)...)
		add(hub.SAdd(ctx, k.nodes, k.node))
		add(hub.Set(ctx, k.alive, "1", o.r.cfg.PresenceTTL))
		if it.announce {
			add(hub.Del(ctx, k.reaped))
			bc := k.wireChannel(k.broadcast)
			for _, u := range users {
				ev := wire.PresenceEvent("user_connected", u)
				env := &wire.Envelope{Type: wire.EnvBroadcast, SenderID: u, Node: k.node, Payload: ev.JSON}
				if k.cluster {
					add(hub.SPublish(ctx, bc, env.Encode()))
				} else {
					add(hub.Publish(ctx, bc, env.Encode()))
				}
			}
		}
	}
	return cmds
}

// networkError returns the first error among cmds that is not a reply from
// Redis: the connection failed and the command's fate is unknown. A reply
// that says this server cannot take writes now (a replica after a
// failover, one still loading, a primary that lost its own) counts too:
// the command did not run, and a fresh connection finds the primary.
func networkError(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		err := c.Err()
		if err == nil || errors.Is(err, goredis.Nil) {
			continue
		}
		var reply goredis.Error
		if !errors.As(err, &reply) || notPrimary(err) {
			return err
		}
	}
	return nil
}

// notPrimary reports whether err is Redis saying that it cannot take
// writes now, as a demoted primary does during a Sentinel failover.
func notPrimary(err error) bool {
	// EXECABORT: the whole batch was discarded for one of those (queued
	// writes refused), or for a lack of memory; either way nothing ran.
	// On a cluster: CLUSTERDOWN, TRYAGAIN, and MOVED or ASK past the
	// redirects go-redis follows (a slot moving, a failover): not run.
	for _, p := range []string{"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "EXECABORT", "CLUSTERDOWN", "TRYAGAIN", "MOVED", "ASK"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// result interprets the replies of one item that reached Redis.
func (o *outbox) result(it *outItem, cmds []goredis.Cmder) itemStatus {
	switch it.kind {
	case outPublish:
		n, err := cmds[0].(*goredis.IntCmd).Result()
		if err != nil {
			o.r.log.Warn("redis refused a publish", "channel", it.channel, keyErr, err)
			return itemDone
		}
		if n == 0 && o.receivers[it.channel] > 0 && !it.resent {
			return itemSuspect
		}
		o.r.stats.published.Add(1)
		if !o.unsettled || n >= o.receivers[it.channel] {
			o.noteReceivers(it.channel, n)
		}
	case outDirect:
		res, err := cmds[0].(*goredis.Cmd).Int64Slice()
		switch {
		case goredis.HasErrorPrefix(err, "NOSCRIPT"):
			o.scripts = false
			return itemRetry
		case err != nil || len(res) != 2:
			o.r.log.Warn("redis direct-message script failed", keyErr, err)
			it.answer(0, port.ErrUnavailable)
		case res[0] == 0 && res[1] > 0 && !it.resent:
			return itemSuspect

		default:
			o.r.stats.directs.Add(1)
			if res[0] == 0 && res[1] > 0 {
				it.answer(0, port.ErrUnavailable) // its nodes are there but not listening
			} else {
				it.answer(int(res[0]), nil)
			}
		}
	case outAppend:
		pos, dup, heard, err := appendResult(cmds[0])
		switch {
		case goredis.HasErrorPrefix(err, "NOSCRIPT"):
			o.scripts = false
			return itemRetry
		case err != nil:
			// Redis refused it (out of memory, a wrong type under the
			// key): nobody will receive it, and its sender was told it
			// was accepted. Counted and logged; rooms see no gap, since
			// it was never numbered.
			o.r.log.Warn("redis refused a room publication", "channel", it.channel, keyErr, err)
			o.r.stats.appendFailures.Add(1)
			if it.appended != nil {
				it.appended(wire.Position{}, port.ErrUnavailable)
			}
		default:
			o.r.stats.appended.Add(1)
			switch prev := o.receivers[it.channel]; {
			case dup:
				o.r.stats.duplicates.Add(1)
			case heard == 0 && prev > 0, o.unsettled && heard < prev:
				// A smaller audience now is the trace of a fault not
				// noticed yet (a slot moved, a subscriber's connection
				// died), or of nodes still coming back: remembered, it
				// would let the next publications out before they are
				// back (sendable). Only a publish's check lowers it.
			default:
				o.noteReceivers(it.channel, heard) // its audience, for sendable
			}
			if it.appended != nil {
				it.appended(pos, nil)
				it.appended = nil
			}
		}
	case outRoomMember:
		if goredis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
			o.scripts = false
			return itemRetry
		}
		if err := cmds[0].Err(); err != nil {
			o.r.log.Warn("redis room presence update failed", keyErr, err)
		}
	case outReapSelf:
		if goredis.HasErrorPrefix(cmds[0].Err(), "NOSCRIPT") {
			o.scripts = false
			return itemRetry
		}
		_, _, rooms, err := reapResult(cmds[0].(*goredis.Cmd))
		if err == nil && len(rooms) > 0 {
			ctx, cancel := context.WithTimeout(o.r.ctx, o.r.cfg.CommandTimeout)
			err = clearShares(ctx, o.conn(), &o.r.keys, rooms)
			cancel()
			if err != nil {
				// The index is kept: the script returns them again, after
				// a pause rather than at once in a loop against a shard
				// that refuses.
				o.retryAt = time.Now().Add(o.r.cfg.ReconnectMax)
				return itemRetry
			}
		}
		if err != nil {
			o.r.log.Warn("redis presence cleanup failed", keyErr, err)
		}
	case outResync:
		o.r.stats.resyncs.Add(1)
		fallthrough
	default:
		for _, c := range cmds {
			if err := c.Err(); err != nil {
				o.r.log.Warn("redis presence update failed", keyErr, err)
				break
			}
		}
	}
	return itemDone
}

func (o *outbox) noteReceivers(channel string, n int64) {
	if _, ok := o.receivers[channel]; !ok && len(o.receivers) >= maxReceivers {
		for ch := range o.receivers {
			delete(o.receivers, ch)
			break
		}
	}
	o.receivers[channel] = n
}
