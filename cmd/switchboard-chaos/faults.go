package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// fault is one kind of failure the suite injects under traffic. inject
// returns once the fault is over (a stopped process started again) and
// checks what supervision promises for it; the round then checks the rest.
type fault struct {
	name       string
	needsRedis bool
	needsNodes int
	inject     func(ctx context.Context, s *suite, round int) faultResult
}

type faultResult struct {
	detail     string
	count      int           // faults of this kind injected
	recovered  time.Duration // fault start to recovery; zero: measured by the round
	violations []string
}

func (r *faultResult) violate(format string, args ...any) {
	r.violations = append(r.violations, fmt.Sprintf(format, args...))
}

var faults = []*fault{
	{name: "session-stop", inject: killSessions(false)},
	{name: "session-panic", inject: killSessions(true)},
	{name: "room-stop", inject: killRooms(false)},
	{name: "room-panic", inject: killRooms(true)},
	{name: "hub-panic", inject: panicHub},
	{name: "subscription-kill", needsRedis: true, inject: killSubscriptions},
	{name: "redis-pause", needsRedis: true, inject: pauseRedis},
	{name: "redis-pubsub-kill", needsRedis: true, inject: killPubSub},
	{name: "redis-stop", needsRedis: true, inject: stopRedis(false)},
	{name: "redis-crash", needsRedis: true, inject: stopRedis(true)},
	{name: "node-kill", inject: killNode},
	{name: "node-term", inject: termNode},
	{name: "slow-reader", inject: slowReader},
	{name: "vanish", inject: vanish},
}

var faultByName = func() map[string]*fault {
	m := map[string]*fault{}
	for _, f := range faults {
		m[f.name] = f
	}
	return m
}()

func faultNames() []string {
	var out []string
	for _, f := range faults {
		out = append(out, f.name)
	}
	return out
}

// burst is how many actors one actor-fault round kills: 2 in the short
// form, 1 to 3 in the long one.
func (s *suite) burst() int {
	if s.cfg.Duration == 0 {
		return 2
	}
	return 1 + s.rng.IntN(3)
}

func (s *suite) upNodes() []*nodeProc {
	var out []*nodeProc
	for _, n := range s.nodes {
		if n.isUp() {
			out = append(out, n)
		}
	}
	return out
}

func (s *suite) randomNode() *nodeProc {
	up := s.upNodes()
	return up[s.rng.IntN(len(up))]
}

// clientsOn returns the ready clients connected to node n.
func (s *suite) clientsOn(n *nodeProc) []*client {
	var out []*client
	for _, c := range s.clients {
		if _, cn, ready := c.state(); ready && cn.node == n.idx {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or within passes; it
// returns how long it took and whether cond held.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) (time.Duration, bool) {
	t0 := time.Now()
	for {
		if cond() {
			return time.Since(t0), true
		}
		if time.Since(t0) > within || ctx.Err() != nil {
			return time.Since(t0), false
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// killSessions stops (or crashes) random sessions from outside. Their
// clients are dead from that instant; each socket must be closed with 1011.
func killSessions(panicMode bool) func(context.Context, *suite, int) faultResult {
	return func(ctx context.Context, s *suite, _ int) faultResult {
		var res faultResult
		type victim struct {
			c  *client
			ws *wsclient.Client
		}
		var victims []victim
		var names []string
		for _, i := range s.rng.Perm(len(s.clients))[:s.burst()] {
			c := s.clients[i]
			ws, cn, ready := c.state()
			if !ready {
				continue
			}
			n := s.nodes[cn.node]
			d, err := n.actors()
			if err != nil {
				res.violate("%v", err)
				continue
			}
			sid := ""
			for _, ss := range d.Sessions {
				if ss.User == c.user {
					sid = ss.ID
				}
			}
			if sid == "" {
				res.violate("%s is connected to %s, which has no session for it", c.user, n.nodeID())
				continue
			}
			s.ledger.markDead(cn, time.Now())
			if panicMode {
				s.base.panicsOf(n.nodeID()).session++
			}
			if err := n.killActor(sid, panicMode); err != nil {
				res.violate("%v", err)
				continue
			}
			res.count++
			victims = append(victims, victim{c, ws})
			names = append(names, c.user+"@"+n.nodeID())
		}
		for _, v := range victims {
			code, err := v.ws.WaitClosed(3 * time.Second)
			if err != nil {
				res.violate("%s: socket still open 3 s after its session was killed", v.c.user)
			} else if code != 1011 {
				res.violate("%s: closed with %d after its session was killed, want 1011", v.c.user, code)
			}
		}
		res.detail = strings.Join(names, " ")
		return res
	}
}

// killRooms stops (or crashes) random room actors. A crashed room is
// resumed with its members; a stopped room is re-created by its members
// re-joining, and until then it is at-most-once on that node.
func killRooms(panicMode bool) func(context.Context, *suite, int) faultResult {
	return func(ctx context.Context, s *suite, _ int) faultResult {
		var res faultResult
		var names []string
		t0 := time.Now()
		for k := s.burst(); k > 0; k-- {
			n := s.randomNode()
			d, err := n.actors()
			if err != nil || len(d.Rooms) == 0 {
				res.violate("%s: no room to kill (%v)", n.nodeID(), err)
				continue
			}
			r := d.Rooms[s.rng.IntN(len(d.Rooms))]
			before := membersOf(d, r.Name)
			names = append(names, r.Name+"@"+n.nodeID())
			if panicMode {
				p := s.base.panicsOf(n.nodeID())
				p.room++
				if err := n.killActor(r.ID, true); err != nil {
					res.violate("%v", err)
					continue
				}
				res.count++
				_, ok := waitFor(ctx, 3*time.Second, func() bool {
					st, err := n.stats()
					d2, err2 := n.actors()
					return err == nil && err2 == nil && int(st.RoomPanics) == p.room &&
						roomID(d2, r.Name) == r.ID && membersOf(d2, r.Name) == before
				})
				if !ok {
					res.violate("room %s on %s: not resumed with its members within 3 s", r.Name, n.nodeID())
				}
				continue
			}
			w := &window{fault: "room-stop", scope: scopeRoomOnNode, node: n.idx, room: r.Name, from: time.Now()}
			s.ledger.openWindow(w)
			if err := n.killActor(r.ID, false); err != nil {
				res.violate("%v", err)
				s.ledger.closeWindow(w, time.Now())
				continue
			}
			res.count++
			_, ok := waitFor(ctx, 5*time.Second, func() bool {
				d2, err := n.actors()
				if err != nil {
					return false
				}
				id := roomID(d2, r.Name)
				return id != "" && id != r.ID && membersOf(d2, r.Name) == before && s.subsAtBaseline(ctx)
			})
			s.ledger.closeWindow(w, time.Now())
			if !ok {
				res.violate("room %s on %s: not re-created with its members and subscription within 5 s", r.Name, n.nodeID())
			}
		}
		res.recovered = time.Since(t0)
		res.detail = strings.Join(names, " ")
		return res
	}
}

func roomID(d *debugActors, name string) string {
	for _, r := range d.Rooms {
		if r.Name == name {
			return r.ID
		}
	}
	return ""
}

// membersOf renders a room's members as sorted user names.
func membersOf(d *debugActors, name string) string {
	sess := d.sessionUsers()
	for _, r := range d.Rooms {
		if r.Name == name {
			var us []string
			for _, m := range r.Members {
				us = append(us, sess[m])
			}
			sort.Strings(us)
			return strings.Join(us, ",")
		}
	}
	return ""
}

// subsAtBaseline reports whether Redis holds exactly the baseline
// subscriptions (always true without Redis).
func (s *suite) subsAtBaseline(ctx context.Context) bool {
	subs, err := s.normalisedSubs(ctx)
	return err == nil && diffSubs(s.base.subs, subs) == ""
}

// panicHub crashes a node's hub: it is resumed with its directory.
func panicHub(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	d, err := n.actors()
	if err != nil {
		res.violate("%v", err)
		return res
	}
	p := s.base.panicsOf(n.nodeID())
	p.hub++
	if err := n.killActor(d.Hub, true); err != nil {
		res.violate("%v", err)
		return res
	}
	res.count++
	took, ok := waitFor(ctx, 3*time.Second, func() bool {
		st, err := n.stats()
		d2, err2 := n.actors()
		return err == nil && err2 == nil && int(st.HubPanics) == p.hub && len(d2.Sessions) == len(d.Sessions)
	})
	if !ok {
		res.violate("hub of %s: not resumed with its directory within 3 s", n.nodeID())
	}
	res.recovered = took
	res.detail = "hub@" + n.nodeID()
	return res
}

// killSubscriptions stops or crashes the broker's actors: the channel
// subscriptions ("sub") and the pub/sub connections they share ("conn"),
// found in the node's actor registry. Each must be restarted and
// re-subscribed by its supervisor; until then the node's inbound traffic is
// at-most-once.
func killSubscriptions(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	var names []string
	t0 := time.Now()
	for k := s.burst(); k > 0; k-- {
		d, err := n.actors()
		if err != nil {
			res.violate("%v", err)
			return res
		}
		kind := "sub"
		if s.rng.IntN(3) == 0 || len(d.Actors["sub"]) == 0 {
			kind = "conn"
		}
		ids := d.Actors[kind]
		if len(ids) == 0 {
			res.detail = "(the broker runs no subscription actors)"
			return res
		}
		id := ids[s.rng.IntN(len(ids))]
		panicMode := s.rng.IntN(2) == 0
		// Supervision counts each new incarnation, after a panic or a stop.
		counter := "switchboard_redis_subscription_restarts_total"
		if kind == "conn" {
			counter = "switchboard_redis_reconnects_total"
		}
		before, err := n.metric(counter)
		if err != nil {
			res.violate("%v", err)
			return res
		}
		w := &window{fault: "subscription-kill", scope: scopeIntoNode, node: n.idx, from: time.Now()}
		s.ledger.openWindow(w)
		if err := n.killActor(id, panicMode); err != nil {
			res.violate("%v", err)
			s.ledger.closeWindow(w, time.Now())
			continue
		}
		res.count++
		names = append(names, fmt.Sprintf("%s(%s)", id[strings.LastIndexByte(id, '/')+1:], map[bool]string{true: "panic", false: "stop"}[panicMode]))
		_, ok := waitFor(ctx, 10*time.Second, func() bool {
			v, err := n.metric(counter)
			if err != nil || v < before+1 {
				return false
			}
			d2, err := n.actors()
			return err == nil && len(d2.Actors["sub"]) == len(d.Actors["sub"]) && len(d2.Actors["conn"]) == len(d.Actors["conn"]) &&
				n.ready() && s.subsAtBaseline(ctx)
		})
		s.ledger.closeWindow(w, time.Now())
		if !ok {
			res.violate("%s: %s not back and subscribed within 10 s", n.nodeID(), id)
		}
	}
	res.recovered = time.Since(t0)
	res.detail = n.nodeID() + " " + strings.Join(names, " ")
	return res
}

// waitRecovered waits until every node is ready and Redis holds the
// baseline subscriptions again.
func (s *suite) waitRecovered(ctx context.Context, within time.Duration) (time.Duration, bool) {
	return waitFor(ctx, within, func() bool {
		for _, n := range s.upNodes() {
			if !n.ready() {
				return false
			}
		}
		return s.subsAtBaseline(ctx)
	})
}

// pauseRedis suspends every Redis client for a while: commands wait, no
// connection drops, so nothing may be lost.
func pauseRedis(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	d := 800 * time.Millisecond
	if s.cfg.Duration > 0 {
		d = time.Duration(300+s.rng.IntN(1200)) * time.Millisecond
	}
	t0 := time.Now()
	if err := s.redis.pause(ctx, d); err != nil {
		res.violate("CLIENT PAUSE: %v", err)
		return res
	}
	res.count++
	sleepCtx(ctx, d)
	if _, ok := s.waitRecovered(ctx, 15*time.Second); !ok {
		res.violate("cluster not recovered within 15 s of the pause's end")
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("CLIENT PAUSE %v ALL", d)
	return res
}

// killPubSub drops every subscriber connection; nodes must re-subscribe.
// Until they have, traffic between nodes is at-most-once.
func killPubSub(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	w := &window{fault: "redis-pubsub-kill", scope: scopeCrossNode, from: time.Now()}
	s.ledger.openWindow(w)
	killed, err := s.redis.killPubSub(ctx)
	if err != nil {
		res.violate("CLIENT KILL TYPE pubsub: %v", err)
	}
	res.count++
	took, ok := s.waitRecovered(ctx, 15*time.Second)
	s.ledger.closeWindow(w, time.Now())
	if !ok {
		res.violate("subscriptions not restored within 15 s")
	}
	res.recovered = took
	res.detail = fmt.Sprintf("CLIENT KILL TYPE pubsub (%d connections)", killed)
	return res
}

// stopRedis takes Redis down (SIGTERM, or SIGKILL when crash) and starts it
// again on the same port. Publishes meanwhile go to each node's outbox;
// between nodes the outage is at-most-once.
func stopRedis(crash bool) func(context.Context, *suite, int) faultResult {
	return func(ctx context.Context, s *suite, _ int) faultResult {
		var res faultResult
		down := time.Second
		if crash {
			down = 0
		} else if s.cfg.Duration > 0 {
			down = time.Duration(500+s.rng.IntN(2000)) * time.Millisecond
		}
		name := map[bool]string{true: "redis-crash", false: "redis-stop"}[crash]
		t0 := time.Now()
		w := &window{fault: name, scope: scopeCrossNode, from: t0}
		s.ledger.openWindow(w)
		s.redis.stop(crash)
		res.count++
		unready := 0
		if down > 0 {
			// Readiness follows the broker: every node should say 503 while
			// Redis is away (reported, not a violation: detection takes a
			// probe interval).
			sleepCtx(ctx, down*3/4)
			for _, n := range s.upNodes() {
				if !n.ready() {
					unready++
				}
			}
			sleepCtx(ctx, down/4)
		}
		if err := s.redis.start(ctx); err != nil {
			res.violate("restart redis: %v", err)
		}
		took, ok := s.waitRecovered(ctx, 20*time.Second)
		s.ledger.closeWindow(w, time.Now())
		if !ok {
			res.violate("cluster not recovered within 20 s of Redis' restart")
		}
		res.recovered = time.Since(t0)
		if crash {
			res.detail = fmt.Sprintf("SIGKILL + restart, recovered %v after", took.Round(time.Millisecond))
		} else {
			res.detail = fmt.Sprintf("down %v, %d/%d nodes unready meanwhile", down, unready, len(s.upNodes()))
		}
		return res
	}
}

// killNode SIGKILLs a node and starts it again. Its clients are dead at
// once and reconnect elsewhere; what its clients had sent but the node had
// not yet handed to Redis is lost (at-most-once).
func killNode(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	old := n.nodeID()
	t0 := time.Now()
	for _, c := range s.clientsOn(n) {
		_, cn, _ := c.state()
		s.ledger.markDead(cn, t0)
	}
	s.ledger.openWindow(&window{fault: "node-kill", scope: scopeFromNode, node: n.idx, from: t0, to: t0})
	for _, p := range n.logProblems() {
		res.violate("%s", p)
	}
	n.kill()
	s.lastNodeKill = time.Now()
	res.count++
	sleepCtx(ctx, 700*time.Millisecond)
	if err := s.restartNode(ctx, n); err != nil {
		res.violate("%v", err)
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("SIGKILL %s, back as %s", old, n.nodeID())
	return res
}

// termNode drains a node with SIGTERM: its clients get 1001, it exits 0
// within --drain-timeout, and what it acknowledged reaches the other nodes
// (no fault window: nothing may be lost).
func termNode(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	old := n.nodeID()
	type victim struct {
		user string
		ws   *wsclient.Client
		cn   *conn
	}
	var victims []victim
	t0 := time.Now()
	for _, c := range s.clientsOn(n) {
		ws, cn, _ := c.state()
		s.ledger.markDead(cn, t0)
		victims = append(victims, victim{c.user, ws, cn})
	}
	for _, p := range n.logProblems() {
		res.violate("%s", p)
	}
	code, took := n.terminate(s.cfg.DrainTimeout + 2*time.Second)
	res.count++
	if code != 0 {
		res.violate("%s exited with %d after SIGTERM", old, code)
	}
	if took > s.cfg.DrainTimeout+time.Second {
		res.violate("%s took %v to exit, --drain-timeout is %v", old, took, s.cfg.DrainTimeout)
	}
	wrong := 0
	for _, v := range victims {
		if c, err := v.ws.WaitClosed(3 * time.Second); err != nil || c != 1001 {
			wrong++
			if wrong <= 3 {
				res.violate("%s: closed with %d (%v) by the drain, want 1001", v.user, c, err)
			}
		}
	}
	if err := s.restartNode(ctx, n); err != nil {
		res.violate("%v", err)
	}
	res.recovered = time.Since(t0)
	res.detail = fmt.Sprintf("SIGTERM %s (%d clients, exit %d in %v)", old, len(victims), code, took.Round(time.Millisecond))
	return res
}

// restartNode starts a new incarnation of n, measures it empty, then lets
// clients in.
func (s *suite) restartNode(ctx context.Context, n *nodeProc) error {
	if err := n.start(ctx, 15*time.Second); err != nil {
		return err
	}
	s.base.empty[n.nodeID()] = s.quietGoroutines(n)
	n.setOpen(true)
	return nil
}

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
			return err == nil && subs[s.prefix+":room:"+room] == int64(len(hosts))
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
