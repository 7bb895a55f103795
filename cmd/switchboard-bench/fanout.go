package main

import (
	"context"
	"fmt"
	"time"
)

// fanoutPlan is the client side of a room or broadcast run: who connects
// where, who publishes to which room, and who receives each room's
// messages. Every load process derives the same plan from the same options
// and run id and takes its share of it (--processes), so that a client's
// user id and room do not depend on which process holds it.
type fanoutPlan struct {
	specs     []clientSpec
	publisher []int // [room]: index in specs of the room's publisher
	// broadcast: every connection but the publisher's receives room 0's
	// messages (chat skips the sender); otherwise the members of a room
	// receive its messages, the publisher included.
	broadcast bool
}

// fanoutPlan builds the plan of the room or broadcast scenario.
//
// room: R rooms of M members spread over the nodes, one publisher per room
// (member 0, itself a member: room messages reach the sender too). Member i
// of room r connects to node (r+i) mod N, so with several nodes every room
// spans them and its messages cross the broker. A room's members are
// consecutive, so a share of the clients holds whole rooms where it can.
//
// broadcast: C clients, client 0 sends chat messages, which reach every
// other connection.
func (r *run) fanoutPlan() *fanoutPlan {
	o := r.o
	n := len(r.t.urls)
	p := &fanoutPlan{}
	if o.scenario == "broadcast" {
		p.broadcast = true
		p.specs = make([]clientSpec, o.clients)
		p.specs[0] = clientSpec{user: "b" + r.runID + "-sender", room: -1}
		for i := 1; i < o.clients; i++ {
			p.specs[i] = clientSpec{user: r.userID(i), node: i % n, room: -1}
		}
		p.publisher = []int{0}
		return p
	}
	p.specs = make([]clientSpec, 0, o.rooms*o.members)
	for room := 0; room < o.rooms; room++ {
		p.publisher = append(p.publisher, len(p.specs))
		for i := 0; i < o.members; i++ {
			p.specs = append(p.specs, clientSpec{user: r.userID(len(p.specs)), node: (room + i) % n, room: room})
		}
	}
	return p
}

// recipients counts, per room, the clients among specs[lo:hi] that receive
// the room's messages.
func (p *fanoutPlan) recipients(lo, hi int) []int32 {
	out := make([]int32, len(p.publisher))
	for i := lo; i < hi; i++ {
		switch {
		case p.broadcast && i != p.publisher[0]:
			out[0]++
		case !p.broadcast:
			out[p.specs[i].room]++
		}
	}
	return out
}

// total is the deliveries per message of each room, over all processes.
func (p *fanoutPlan) total() []int32 { return p.recipients(0, len(p.specs)) }

// publishers returns the publishers among specs[lo:hi], whose clients
// (connected in that order) are clients.
func (r *run) publishers(p *fanoutPlan, clients []*loadClient, lo, hi int) []publisher {
	var pubs []publisher
	for room, i := range p.publisher {
		if i < lo || i >= hi {
			continue
		}
		pubs = append(pubs, publisher{c: clients[i-lo], room: room, frame: r.frame(room)})
	}
	return pubs
}

// frame builds the load message of room (a room_message, or a chat for
// broadcast).
func (r *run) frame(room int) func(dst []byte, seq int, sent time.Time) []byte {
	size := r.o.size
	if r.o.scenario == "broadcast" {
		return func(dst []byte, seq int, sent time.Time) []byte { return appendChat(dst, seq, sent, size) }
	}
	name := r.roomName(room)
	return func(dst []byte, seq int, sent time.Time) []byte {
		return appendRoomMessage(dst, name, room, seq, sent, size)
	}
}

// connectShare connects specs[lo:hi] and joins the room scenario's members
// to their rooms. It fails when any connection failed: a fan-out figure
// with members missing would not be the scenario asked for.
func (r *run) connectShare(ctx context.Context, p *fanoutPlan, lo, hi int, rs *runState) ([]*loadClient, *ConnectStats, error) {
	clients, cs, err := r.connect(ctx, p.specs[lo:hi], rs)
	if err != nil {
		return clients, cs, err
	}
	if cs.Failed > 0 {
		return clients, cs, fmt.Errorf("%d of %d connections failed", cs.Failed, hi-lo)
	}
	if !p.broadcast {
		err = r.joinAll(ctx, clients)
	}
	return clients, cs, err
}

// fanoutScenario runs the room or broadcast scenario with every client in
// this process.
func (r *run) fanoutScenario(ctx context.Context) (*Result, error) {
	p := r.fanoutPlan()
	rs := newRunState(r.o.messages, p.total())
	res := r.result(len(p.specs))
	clients, cs, err := r.connectShare(ctx, p, 0, len(p.specs), rs)
	res.Connect = cs
	defer r.closeAll(clients)
	if err != nil {
		return res, err
	}
	r.quiesce(ctx, 30*time.Second)
	pubs := r.publishers(p, clients, 0, len(p.specs))
	shards := r.redisBefore(ctx)
	r.startCPU()
	rs.start = time.Now()
	sent, truncated := r.sendAll(ctx, pubs, rs, len(p.publisher))
	r.drain(ctx, rs)
	res.Sent, res.Truncated = sum(sent), truncated
	res.Errors = rs.errors.Load()
	finishFanout(res, rs.expected.Load(), rs.delivered.Load(), rs.start, rs.lastDelivery(), &rs.latency)
	res.ServerCPUPerDelivery = r.cpuPerDelivery(res.Received)
	r.redisAfter(ctx, shards, res)
	clientTotals(res, clients)
	return res, nil
}

// finishFanout fills the delivery figures of a fan-out result.
func finishFanout(res *Result, expected, received int64, start, end time.Time, lat *histogram) {
	res.Expected, res.Received, res.Lost = expected, received, expected-received
	if el := end.Sub(start); el > 0 {
		res.Seconds = el.Seconds()
		res.DeliveriesPerSec = float64(received) / el.Seconds()
	}
	l := lat.Summary()
	res.Latency = &l
}

func sum(xs []int64) int64 {
	var t int64
	for _, x := range xs {
		t += x
	}
	return t
}
