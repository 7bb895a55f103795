package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Actor faults: sessions, rooms, the hub and the broker's actors, killed
// from outside through the nodes' /debug/kill.

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
