package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Hostile clients, second kind: a mass exit. Many connections, each a user
// of its own, join rooms of their own by the hundred on one node, then all
// drop at once while the ledger's traffic flows and the node's own clients
// reconnect and join their rooms again. The node must release every
// channel of those rooms (and only those) within a bound, and the joins
// made meanwhile must not be deaf: the ledger owes them every message.

const (
	// massPrefix starts the user ids of mass-exit connections; regular
	// clients ignore what they hear about them.
	massPrefix = "m-"
	// massRoomsPerConn is the rooms each mass-exit connection joins: the
	// node's --max-rooms default, which the suite keeps.
	massRoomsPerConn = 100
	// massSharers is how many mass-exit connections also join a room of
	// the ledger's (that room must keep its channel when they leave); the
	// others' rooms have them as only member. Few: every member of a room
	// hears every join and leave in it.
	massSharers = 16
	// massDialers is how many connections join at the same time.
	massDialers = 8
)

// massReleaseBound is how long a node may take, from the mass exit, to
// release the channels of memberships rooms and to have its regular
// clients back in theirs, Redis holding exactly the baseline subscriptions.
func massReleaseBound(memberships int) time.Duration {
	return 10*time.Second + time.Duration(memberships)*100*time.Microsecond
}

// massConn is one mass-exit connection. Its counters are written by its
// read goroutine and read by the controller.
type massConn struct {
	ws    *wsclient.Client
	want  int64
	acks  atomic.Int64
	fails atomic.Int64
	code  atomic.Value // string: the first refusal's error code
	done  chan struct{}
	once  sync.Once
}

func (m *massConn) onEvent(ev *wsclient.Event) {
	if ev.Event != "ack" && ev.Event != "error" {
		return
	}
	var id string
	if json.Unmarshal(ev.ID, &id) != nil || !strings.HasPrefix(id, "m") {
		return
	}
	if ev.Event == "ack" {
		m.acks.Add(1)
	} else {
		m.code.CompareAndSwap(nil, ev.Code)
		m.fails.Add(1)
	}
	if m.acks.Load()+m.fails.Load() == m.want {
		m.once.Do(func() { close(m.done) })
	}
}

// massExit is the fault: join, drop at once, re-join the node's regular
// clients during the release, and wait for the release.
func massExit(ctx context.Context, s *suite, _ int) faultResult {
	var res faultResult
	n := s.randomNode()
	k := s.specials.Add(1)
	total := s.cfg.MassExit
	per := min(massRoomsPerConn, total)
	conns := (total + per - 1) / per
	roomPrefix := fmt.Sprintf("mx%d-", k)

	t0 := time.Now()
	ms, problems := s.massJoin(ctx, n, k, roomPrefix, conns, per, total)
	defer func() {
		for _, m := range ms {
			m.ws.Abort()
		}
	}()
	for _, p := range problems {
		res.violate("%s", p)
	}
	joined := int64(0)
	for _, m := range ms {
		joined += m.acks.Load()
	}
	joinTook := time.Since(t0)
	channels, err := s.redis.channels(ctx, s.prefix+":room:"+roomPrefix+"*")
	if err != nil {
		res.violate("PUBSUB CHANNELS: %v", err)
	}

	// The exit: every socket closed in one sweep, then the node's regular
	// clients leave and come back (their joins land in the release).
	t1 := time.Now()
	for _, m := range ms {
		_ = m.ws.Conn().NetConn().Close()
	}
	for _, m := range ms {
		<-m.ws.Closed()
	}
	ms = nil
	res.count++
	// The regular clients leave once the release is under way: 100 ms
	// after the exit in the short form, 50 to 500 ms in the long one.
	pause := 100 * time.Millisecond
	if s.cfg.Duration > 0 {
		pause = time.Duration(50+s.rng.IntN(450)) * time.Millisecond
	}
	sleepCtx(ctx, pause)
	rejoined := s.reconnectClients(n)
	rejoinAt := time.Since(t1)

	bound := massReleaseBound(total)
	var released, settled time.Duration
	left := -1
	for ctx.Err() == nil && time.Since(t1) < bound {
		if released == 0 {
			chs, err := s.redis.channels(ctx, s.prefix+":room:"+roomPrefix+"*")
			if err == nil {
				left = len(chs)
			}
			if err == nil && len(chs) == 0 {
				released = time.Since(t1)
			}
		}
		if released > 0 {
			keys, err := s.redis.keys(ctx, s.prefix+":presence:user:"+massPrefix+fmt.Sprint(k)+"-*")
			if err == nil && len(keys) == 0 && s.allReady() && s.subsAtBaseline(ctx) {
				settled = time.Since(t1)
				break
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	switch {
	case released == 0:
		res.violate("%s: %d of %d channels still subscribed %v after the mass exit (bound %v)", n.nodeID(), left, len(channels), time.Since(t1).Round(time.Millisecond), bound)
	case settled == 0:
		subs, _ := s.normalisedSubs(ctx)
		res.violate("%s: channels released in %v, but within %v presence, clients or subscriptions not back (%s)",
			n.nodeID(), released.Round(time.Millisecond), bound, diffSubs(s.base.subs, subs))
	}
	if !n.alive() {
		res.violate("%s is down after the mass exit: %v", n.nodeID(), n.exitError())
	}
	res.recovered = settled
	res.detail = fmt.Sprintf("%s: %d conns x %d rooms (%d joined, %d channels) in %v; released in %v, %d clients left and re-joined from +%v",
		n.nodeID(), conns, per, joined, len(channels), joinTook.Round(100*time.Millisecond), released.Round(time.Millisecond), rejoined, rejoinAt.Round(time.Millisecond))
	return res
}

// massJoin connects conns users to n, massDialers at a time, each joining
// per rooms (total in all) and waiting for every reply. Room j of
// connection i is roomPrefix+"i-j", except that the first massSharers
// connections join a room of the ledger's instead of their room 0.
func (s *suite) massJoin(ctx context.Context, n *nodeProc, k int64, roomPrefix string, conns, per, total int) ([]*massConn, []string) {
	ms := make([]*massConn, conns)
	errs := make([]string, conns)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range massDialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= conns {
					return
				}
				want := min(per, total-i*per)
				m := &massConn{want: int64(want), done: make(chan struct{})}
				ws, err := wsclient.Dial(n.wsURL(fmt.Sprintf("%s%d-%d", massPrefix, k, i)), wsclient.Options{Timeout: 5 * time.Second, OnEvent: m.onEvent})
				if err != nil {
					errs[i] = fmt.Sprintf("mass connection %d: %v", i, err)
					continue
				}
				m.ws = ws
				ms[i] = m
				for j := range want {
					room := fmt.Sprintf("%s%d-%d", roomPrefix, i, j)
					if j == 0 && i < massSharers {
						room = roomName(i % s.cfg.Rooms)
					}
					if err := ws.SendJSON(map[string]any{"type": "join_room", "room": room, "id": fmt.Sprint("m", j)}); err != nil {
						break
					}
				}
				select {
				case <-m.done:
					if f := m.fails.Load(); f > 0 {
						errs[i] = fmt.Sprintf("mass connection %d: %d of %d joins refused (%v)", i, f, want, m.code.Load())
					}
				case <-ws.Closed():
					code, why := ws.CloseCode()
					errs[i] = fmt.Sprintf("mass connection %d closed with %d %q after %d of %d joins", i, code, why, m.acks.Load(), want)
				case <-time.After(30 * time.Second):
					errs[i] = fmt.Sprintf("mass connection %d: %d of %d joins acknowledged within 30 s", i, m.acks.Load(), want)
				case <-ctx.Done():
				}
			}
		}()
	}
	wg.Wait()
	var out []*massConn
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	var problems []string
	bad := 0
	for _, e := range errs {
		if e == "" {
			continue
		}
		if bad++; bad <= 3 {
			problems = append(problems, e)
		}
	}
	if bad > 3 {
		problems = append(problems, fmt.Sprintf("%d more mass connections failed", bad-3))
	}
	return out, problems
}

// reconnectClients closes the connection of every regular client on n
// (normally, as a user leaving would); each reconnects to n, its home, and
// joins its rooms again. It returns how many there were.
func (s *suite) reconnectClients(n *nodeProc) int {
	var wg sync.WaitGroup
	cs := s.clientsOn(n)
	old := make([]*conn, len(cs))
	for i, c := range cs {
		ws, cn, _ := c.state()
		old[i] = cn
		s.ledger.markDead(cn, time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = ws.Close()
		}()
	}
	wg.Wait()
	// Each client's goroutine notices its closed socket at once; wait for
	// that, so that readiness from here on is the new connection's.
	waitFor(context.Background(), 3*time.Second, func() bool {
		for i, c := range cs {
			if _, cn, ready := c.state(); ready && cn == old[i] {
				return false
			}
		}
		return true
	})
	return len(cs)
}

// allReady reports whether every regular client is connected and in its rooms.
func (s *suite) allReady() bool {
	for _, c := range s.clients {
		if _, _, ready := c.state(); !ready {
			return false
		}
	}
	return true
}
