package redis

import (
	"hash/fnv"
	"strconv"
	"sync/atomic"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// bus is the Redis broker's registry: which local actors (rooms, the hub)
// need which channel. It is the source of truth that every (re)subscription
// is built from. It spawns, as children, the pub/sub connection actors (one
// per Config.PubSubConnections) and one subscription actor per channel.
// Its fields are touched only by Receive.
type bus struct {
	r        *Broker
	conns    []port.Ref
	channels map[string]*channelEntry
	// bySub maps a registered subscription actor's id to its channel, so
	// that the end of one of many thousand children is found at once: a
	// scan of channels per Terminated made a mass exit quadratic (30,000
	// channels took 29 s to release, on a whole core).
	bySub    map[string]string
	stopping bool // the bus is stopping: children that end stay ended
}

// channelEntry is one subscribed channel.
type channelEntry struct {
	sub     port.Ref   // the channel's subscription actor
	conn    int        // index of the connection that carries it
	targets []port.Ref // local actors to deliver to; replaced, never mutated, once sent
}

// Broker API -> bus: target needs channel (on) or no longer does.
type busSubscribe struct {
	channel string
	target  port.Ref
	on      bool
}

// subscribePriority is the mailbox priority of what makes a channel live
// (a subscription, its route, a connection's snapshot): the bus and the
// connections handle it ahead of the unsubscriptions queued before it, so
// that a room created during a mass exit is confirmed in one round trip,
// not after the whole release. Reordering is safe: a target subscribes
// once, before it unsubscribes, and the registry and the routes are keyed
// by target and by subscription actor, so an unsubscription overtaken by
// a new subscription of the same channel only removes what it names.
const subscribePriority = port.DefaultPriority + 1

func (m *busSubscribe) GetPriority() int8 {
	if m.on {
		return subscribePriority
	}
	return port.DefaultPriority
}

// connection -> bus (request): which channels do I carry now?
type snapshotQuery struct{ index int }

// bus -> connection (response): the channels it carries and their actors.
// It has the priority of the routes that follow it (see route).
type snapshot struct{ routes map[string]port.Ref }

func (*snapshot) GetPriority() int8 { return subscribePriority }

// subscription -> bus (request): who are my targets now?
type targetsQuery struct{ channel string }

// bus -> subscription: the channel's current targets (response to
// targetsQuery, or pushed on change). known is false when the channel is no
// longer registered.
type targetsUpdate struct {
	targets []port.Ref
	known   bool
}

func (*targetsUpdate) IgnoreDeadLetterLogging() {}

// bus -> connection: start carrying channel for sub. A route overtakes
// the unroutes queued before it (subscribePriority), never the snapshot
// the bus answered before it: a connection that is not ready yet ignores
// a route, because its snapshot holds the channel.
type route struct {
	channel string
	sub     port.Ref
}

func (*route) GetPriority() int8 { return subscribePriority }

// bus -> connection: stop carrying channel; the connection stops sub once
// nothing more can be routed to it.
type unroute struct {
	channel string
	sub     port.Ref
}

// Broker.Subscriptions -> bus (request): list the channels; the reply is
// map[string]string (channel -> subscription actor id).
type subscriptionsQuery struct{}

// outbox -> bus -> connections: probe now (a publish was heard by nobody).
type probeNow struct{}

func (probeNow) IgnoreDeadLetterLogging() {}

func newBus(r *Broker) *bus {
	return &bus{r: r, channels: make(map[string]*channelEntry), bySub: make(map[string]string)}
}

func (b *bus) Receive(ctx port.Context) {
	defer logPanics(b.r.log, "redis-bus")
	switch m := ctx.Message().(type) {
	case *busSubscribe:
		if m.on {
			b.subscribe(ctx, m.channel, m.target)
		} else {
			b.unsubscribe(ctx, m.channel, m.target)
		}
	case *snapshotQuery:
		routes := make(map[string]port.Ref)
		for ch, e := range b.channels {
			if e.conn == m.index {
				routes[ch] = e.sub
			}
		}
		ctx.Respond(&snapshot{routes: routes})
	case *targetsQuery:
		if e, ok := b.channels[m.channel]; ok && e.sub.Equal(ctx.Sender()) {
			ctx.Respond(&targetsUpdate{targets: e.targets, known: true})
			return
		}
		ctx.Respond(&targetsUpdate{})
	case *subscriptionsQuery:
		out := make(map[string]string, len(b.channels))
		for ch, e := range b.channels {
			out[ch] = e.sub.ID()
		}
		ctx.Respond(out)
	case probeNow:
		for _, c := range b.conns {
			ctx.Send(c, m)
		}
	case *port.Started:
		b.conns = make([]port.Ref, b.r.cfg.PubSubConnections)
		for i := range b.conns {
			b.conns[i] = b.spawnConn(ctx, i)
		}
	case *port.Terminated:
		b.childStopped(ctx, m.Who)
	case *port.Stopping:
		b.stopping = true
	}
}

func (b *bus) spawnConn(ctx port.Context, i int) port.Ref {
	ref, err := ctx.Spawn(port.Spec{
		New:      func() port.Behavior { return newPubSubConn(b.r, i) },
		Name:     "conn-" + strconv.Itoa(i),
		Priority: true, // see subscribePriority
	})
	if err != nil {
		panic(err)
	}
	return ref
}

// childStopped handles the end of a child that was stopped rather than
// failed (an operator's or a chaos test's kill; failures are restarted by
// restartSubscriptionWithBackoff): a connection or a subscription that the
// registry still needs is spawned again and rebuilds itself from the
// registry, as after a restart. A subscription its connection poisoned
// after an unsubscribe is no longer in the registry and stays ended.
func (b *bus) childStopped(ctx port.Context, who port.Ref) {
	if b.stopping {
		return
	}
	for i, c := range b.conns {
		if c.Equal(who) {
			b.r.stats.reconnects.Add(1)
			b.conns[i] = b.spawnConn(ctx, i)
			return
		}
	}
	channel, ok := b.bySub[who.ID()]
	if !ok {
		return
	}
	delete(b.bySub, who.ID())
	e := b.channels[channel]
	b.r.stats.subRestarts.Add(1)
	e.sub = b.spawnSub(ctx, channel, e.targets)
	ctx.Send(b.conns[e.conn], &route{channel: channel, sub: e.sub})
}

// connFor picks the connection that carries channel: the hub's channels
// (broadcast, this node's direct channel) ride on connection 0 so that a
// sender's chat and direct messages to one user keep their order; rooms
// are spread over the other connections.
func (b *bus) connFor(channel string) int {
	n := len(b.conns)
	k := &b.r.keys
	if n == 1 || channel == k.broadcast || channel == k.nodeChan {
		return 0
	}
	if k.cluster {
		return k.connIndex(channel) // connection 1+i carries partition i
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(channel))
	return 1 + int(h.Sum32()%uint32(n-1))
}

func (b *bus) subscribe(ctx port.Context, channel string, target port.Ref) {
	e, ok := b.channels[channel]
	if !ok {
		e = &channelEntry{conn: b.connFor(channel), targets: []port.Ref{target}}
		e.sub = b.spawnSub(ctx, channel, e.targets)
		b.channels[channel] = e
		b.r.stats.subscriptions.Add(1)
		ctx.Send(b.conns[e.conn], &route{channel: channel, sub: e.sub})
		return
	}
	for _, t := range e.targets {
		if t.Equal(target) {
			return
		}
	}
	e.targets = append(append(make([]port.Ref, 0, len(e.targets)+1), e.targets...), target)
	ctx.Send(e.sub, &targetsUpdate{targets: e.targets, known: true})
}

// spawnSub starts the subscription actor of channel for targets and
// registers it in bySub.
func (b *bus) spawnSub(ctx port.Context, channel string, targets []port.Ref) port.Ref {
	self, r := ctx.Self(), b.r
	var incarnations atomic.Int32
	ref, _ := ctx.Spawn(port.Spec{ // a generated name is never taken
		New: func() port.Behavior {
			// The first incarnation knows its targets; one restarted after
			// a panic asks the bus for the current ones.
			if incarnations.Add(1) == 1 {
				return newSubscription(r, channel, self, targets)
			}
			return newSubscription(r, channel, self, nil)
		},
		Prefix: "sub:" + channel + "#",
		Pooled: true, // one per channel: see port.Spec
	})
	b.bySub[ref.ID()] = channel
	return ref
}

func (b *bus) unsubscribe(ctx port.Context, channel string, target port.Ref) {
	e, ok := b.channels[channel]
	if !ok {
		return
	}
	var kept []port.Ref // nil for the last target: nothing to allocate
	if len(e.targets) != 1 || !e.targets[0].Equal(target) {
		kept = make([]port.Ref, 0, len(e.targets))
		for _, t := range e.targets {
			if !t.Equal(target) {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(e.targets) {
			return
		}
	}
	if len(kept) > 0 {
		e.targets = kept
		ctx.Send(e.sub, &targetsUpdate{targets: kept, known: true})
		return
	}
	delete(b.channels, channel)
	delete(b.bySub, e.sub.ID())
	b.r.stats.subscriptions.Add(-1)
	ctx.Send(b.conns[e.conn], &unroute{channel: channel, sub: e.sub})
}
