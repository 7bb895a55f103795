package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Client faults: a slow reader, a peer that vanishes without a close, and
// regular clients whose sockets die and who come back elsewhere with since.

// slowReader connects a client that never reads to a room of its own, with
// a flooder and a reader on other nodes (or the same): its node must cut
// it with 1013 once its outbound budget is exceeded, and the reader must
// still get every flood message in order. Regular traffic goes on
// meanwhile, and no regular client may be cut.
func slowReader(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	k := s.specials.Add(1)
	n := s.randomNode()
	room := fmt.Sprintf("flood%d", k)
	user := fmt.Sprintf("%sslow%d", specialPrefix, k)
	st0, err := n.stats()
	if err != nil {
		res.violate("%v", err)
		return res
	}
	raw, err := dialSlowReader(n.addr, user, room)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	defer raw.Close()
	if _, ok := waitFor(ctx, 3*time.Second, func() bool {
		d, err := n.actors()
		return err == nil && membersOf(d, room) == user
	}); !ok {
		res.violate("slow reader %s never joined %s on %s", user, room, n.nodeID())
		return res
	}
	fn, rn := s.randomNode(), s.randomNode()
	flooder, err := dialFloodClient(fn, fmt.Sprintf("%sflooder%d", specialPrefix, k), room)
	if err != nil {
		res.violate("flooder: %v", err)
		return res
	}
	defer flooder.ws.Abort()
	reader, err := dialFloodClient(rn, fmt.Sprintf("%sreader%d", specialPrefix, k), room)
	if err != nil {
		res.violate("reader: %v", err)
		return res
	}
	defer reader.ws.Abort()
	// A join is acknowledged once the room actor has the member; the
	// room's broker subscription follows asynchronously. Wait for it on
	// every node with a member before counting on delivery.
	hosts := map[int]bool{n.idx: true, fn.idx: true, rn.idx: true}
	if s.redis != nil {
		if _, ok := waitFor(ctx, 5*time.Second, func() bool {
			subs, err := s.normalisedSubs(ctx)
			return err == nil && roomSubscribed(s.redis, subs[s.redis.roomChannel(s.prefix, room)], len(hosts))
		}); !ok {
			res.violate("flood room %s not subscribed by its %d nodes within 5 s", room, len(hosts))
		}
	}
	res.count++
	cut := func() bool {
		st, err := n.stats()
		d, err2 := n.actors()
		return err == nil && err2 == nil && st.SlowConsumers > st0.SlowConsumers && !strings.Contains(membersOf(d, room), user)
	}
	// Loopback sockets buffer a few MiB before a write blocks; the budget
	// (maxPendingBytes) counts only what waits beyond that.
	const size = 16 << 10
	sent := 0
	for i := 0; i < 150 && !cut(); i++ {
		for j := 0; j < 8; j++ {
			if flooder.send(sent, size) == nil {
				sent++
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	wasCut, _ := waitFor(ctx, 5*time.Second, cut)
	ok := cut()
	// The room goes on without it.
	for j := 0; j < 10; j++ {
		if flooder.send(sent, size) == nil {
			sent++
		}
	}
	if _, all := waitFor(ctx, 10*time.Second, func() bool {
		return flooder.acks.Load() == int64(sent) && reader.got.Load() == int64(sent)
	}); !all {
		res.violate("flood room %s: %d sent, %d acked, %d read by the other member", room, sent, flooder.acks.Load(), reader.got.Load())
	}
	if bad := reader.disorder.Load(); bad > 0 {
		res.violate("flood room %s: %d messages out of order at the other member", room, bad)
	}
	if !ok {
		code, why := flooder.ws.CloseCode()
		res.violate("slow reader %s on %s not cut (1013) within 5 s of a %d KiB flood (flooder close %d %q, send error %v)", user, n.nodeID(), sent*size>>10, code, why, flooder.send(sent, 10))
	}
	res.recovered = wasCut
	res.detail = fmt.Sprintf("%s@%s cut after %d KiB, reader got %d/%d", user, n.nodeID(), sent*size>>10, reader.got.Load(), sent)
	return res
}

// vanish connects a client through a proxy, then cuts the network under it
// without a close: the node must notice within ping interval + pong timeout,
// every node's clients must hear that the user left, and the presence
// directory must forget the user.
func vanish(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	room := roomName(s.rng.IntN(s.cfg.Rooms))
	user := fmt.Sprintf("%svanish%d", specialPrefix, s.specials.Add(1))
	p, err := newFreezeProxy(n.addr)
	if err != nil {
		res.violate("%v", err)
		return res
	}
	defer p.close()
	ws, err := wsclient.Dial("ws://"+p.addr()+"/ws?client_id="+user, wsclient.Options{Timeout: 2 * time.Second})
	if err != nil {
		res.violate("dial through the proxy: %v", err)
		return res
	}
	defer ws.Abort()
	if err := ws.SendJSON(map[string]any{"type": "join_room", "room": room, "id": "j"}); err != nil {
		res.violate("%v", err)
		return res
	}
	if _, err := ws.WaitFor(3*time.Second, func(e *wsclient.Event) bool { return e.Event == "ack" }); err != nil {
		res.violate("vanishing client could not join: %v", err)
		return res
	}
	// The nodes that must hear of it: every node with a ready client.
	nodesWithClients := map[int]bool{}
	nodesWithMembers := map[int]bool{}
	for _, c := range s.clients {
		if _, cn, ready := c.state(); ready {
			nodesWithClients[cn.node] = true
			if c.inRoom(room) {
				nodesWithMembers[cn.node] = true
			}
		}
	}
	s.presence.forget(user)
	t0 := time.Now()
	p.freeze()
	res.count++
	bound := s.cfg.PingInterval + s.cfg.PongTimeout + 1500*time.Millisecond
	heard := func() bool {
		disc := s.presence.firstPerNode(user, "user_disconnected")
		left := s.presence.firstPerNode(user, "user_left")
		for i := range nodesWithClients {
			if _, ok := disc[i]; !ok {
				return false
			}
		}
		for i := range nodesWithMembers {
			if _, ok := left[i]; !ok {
				return false
			}
		}
		d, err := n.actors()
		if err != nil {
			return false
		}
		for _, ss := range d.Sessions {
			if ss.User == user {
				return false
			}
		}
		if s.redis != nil {
			keys, err := s.redis.keys(ctx, s.prefix+":presence:user:"+user)
			if err != nil || len(keys) > 0 {
				return false
			}
		}
		return true
	}
	took, ok := waitFor(ctx, bound+3*time.Second, heard)
	last := time.Duration(0)
	for _, at := range s.presence.firstPerNode(user, "user_disconnected") {
		last = max(last, at.Sub(t0))
	}
	switch {
	case !ok:
		res.violate("%s vanished from %s: not cleaned up everywhere within %v", user, n.nodeID(), bound+3*time.Second)
	case last > bound:
		res.violate("%s vanished from %s: the last node heard after %v, bound %v (ping %v + pong %v + 1.5 s)",
			user, n.nodeID(), last, bound, s.cfg.PingInterval, s.cfg.PongTimeout)
	}
	res.recovered = took
	res.detail = fmt.Sprintf("%s in %s@%s, gone everywhere after %v", user, room, n.nodeID(), last.Round(time.Millisecond))
	return res
}

// dropClients cuts the sockets of a few regular clients without a close
// frame, as a dead network or a killed app does. Each stays away while
// traffic goes on, then reconnects to another node and rejoins its rooms
// with since: the ledger owes it every room message sent meanwhile.
func dropClients(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	k, away := 4, 800*time.Millisecond
	if s.cfg.Duration > 0 {
		k, away = 2+s.rng.IntN(5), time.Duration(200+s.rng.IntN(1800))*time.Millisecond
	}
	type victim struct {
		c    *client
		cn   *conn
		node int
	}
	var victims []victim
	var names []string
	for _, i := range s.rng.Perm(len(s.clients)) {
		if len(victims) == k {
			break
		}
		c := s.clients[i]
		ws, cn, ready := c.state()
		if !ready {
			continue
		}
		c.mu.Lock()
		c.holdOff, c.avoid = away, cn.node
		c.mu.Unlock()
		s.ledger.markDead(cn, time.Now())
		ws.Abort()
		res.count++
		victims = append(victims, victim{c, cn, cn.node})
		names = append(names, fmt.Sprintf("%s@%s", c.user, cn.nodeID))
	}
	elsewhere := 0
	took, ok := waitFor(ctx, away+10*time.Second, func() bool {
		elsewhere = 0
		for _, v := range victims {
			_, cn, ready := v.c.state()
			if !ready || cn == v.cn {
				return false
			}
			if cn.node != v.node {
				elsewhere++
			}
		}
		return true
	})
	if !ok {
		res.violate("dropped clients not back within %v", away+10*time.Second)
	}
	if len(s.upNodes()) > 1 && elsewhere < len(victims) {
		res.violate("%d of %d dropped clients came back on the node they left", len(victims)-elsewhere, len(victims))
	}
	res.recovered = took
	res.detail = fmt.Sprintf("%s away %v", strings.Join(names, " "), away)
	return res
}
