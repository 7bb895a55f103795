package cluster

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Fabric is an in-process pub/sub fabric shared by the nodes of one process.
// Its state (subscriptions, presence) is owned by one actor; brokers talk to
// it with messages, so Publish never blocks.
//
// The fabric's actor runs on an actor host of its own (a Detached host of
// the first node's), started by the first broker's Start: it outlives any
// one node of the process, and a fabric no node ever started holds nothing.
type Fabric struct {
	once   sync.Once
	actor  atomic.Pointer[fabricRef] // set once by the first Start
	down   atomic.Bool
	closed atomic.Bool
}

// fabricRef is the fabric's actor and the host it runs on.
type fabricRef struct {
	host port.ActorHost
	ref  port.Ref
	stop func() // ends the host
}

// NewFabric returns a fabric; its actor starts with the first broker.
func NewFabric() *Fabric { return &Fabric{} }

// start spawns the fabric's actor on a host detached from host, once.
func (f *Fabric) start(host port.ActorHost) error {
	var err error
	f.once.Do(func() {
		h, stop := host.Detached()
		var ref port.Ref
		ref, err = h.Spawn(port.Spec{New: func() port.Behavior {
			return &fabricActor{subs: map[string][]target{}, users: map[string][]string{}, nodes: map[string]target{}}
		}})
		if err != nil {
			stop()
			return
		}
		f.actor.Store(&fabricRef{host: h, ref: ref, stop: stop})
	})
	return err
}

// send hands msg to the fabric's actor; before any Start there is none,
// and msg is dropped.
func (f *Fabric) send(msg any) {
	if a := f.actor.Load(); a != nil {
		a.host.Send(a.ref, msg)
	}
}

// SetDown simulates an outage: while down, Publish and SendDirect refuse with
// port.ErrUnavailable and State reports disconnected. For tests.
func (f *Fabric) SetDown(down bool) { f.down.Store(down) }

// Close stops the fabric.
func (f *Fabric) Close() {
	if f.closed.CompareAndSwap(false, true) {
		f.once.Do(func() {}) // no actor starts after Close
		if a := f.actor.Load(); a != nil {
			_ = a.host.Stop(context.Background(), a.ref)
			a.stop()
		}
	}
}

// PublishEncoded delivers data to every subscriber of channel as it is:
// what a backend's PUBLISH of bytes that no node encoded is on Redis (for
// tests of what a node does with them). Never blocks.
func (f *Fabric) PublishEncoded(channel string, data []byte) {
	f.send(&fabPublish{channel: channel, data: data})
}

// Broker returns a new node-side broker on this fabric.
func (f *Fabric) Broker() *InProc { return &InProc{fabric: f} }

// InProc is the in-process broker (port.Broker).
type InProc struct {
	fabric *Fabric
	owned  bool // the fabric was created for this broker alone
	host   port.BrokerHost
}

var _ port.Broker = (*InProc)(nil)

// NewInProc returns a broker on a fabric of its own: a single node.
func NewInProc() *InProc {
	b := NewFabric().Broker()
	b.owned = true
	return b
}

// Start implements port.Broker.
func (b *InProc) Start(host port.BrokerHost) error {
	b.host = host
	if err := b.fabric.start(host.Actors); err != nil {
		return err
	}
	b.fabric.send(&fabNode{node: host.NodeID, t: target{ref: host.Hub, node: host.NodeID}, history: host.History})
	return nil
}

// Publish implements port.Broker.
func (b *InProc) Publish(channel string, env *wire.Envelope) error {
	if b.fabric.down.Load() {
		return port.ErrUnavailable
	}
	b.fabric.send(&fabPublish{channel: channel, env: env})
	return nil
}

// Subscribe implements port.Broker.
func (b *InProc) Subscribe(channel string, ref port.Ref) {
	b.fabric.send(&fabSub{channel: channel, t: target{ref: ref, node: b.host.NodeID}, on: true})
}

// Unsubscribe implements port.Broker.
func (b *InProc) Unsubscribe(channel string, ref port.Ref) {
	b.fabric.send(&fabSub{channel: channel, t: target{ref: ref, node: b.host.NodeID}})
}

// Append implements port.Broker: the fabric numbers env in the room's
// stream and delivers it to every subscriber, this node's included.
func (b *InProc) Append(channel string, env *wire.Envelope, done func(wire.Position, error)) error {
	if b.fabric.down.Load() {
		return port.ErrUnavailable
	}
	b.fabric.send(&fabAppend{channel: channel, env: env, done: done})
	return nil
}

// Read implements port.Broker.
func (b *InProc) Read(channel string, q port.StreamQuery, done func(port.StreamRead, error)) {
	if b.fabric.down.Load() {
		done(port.StreamRead{}, port.ErrUnavailable)
		return
	}
	b.fabric.send(&fabRead{channel: channel, q: q, done: done})
}

// SendDirect implements port.Broker.
func (b *InProc) SendDirect(user string, env *wire.Envelope, done func(int, error)) {
	if b.fabric.down.Load() {
		done(0, port.ErrUnavailable)
		return
	}
	b.fabric.send(&fabDirect{user: user, env: env, done: done})
}

// UserOnline implements port.Broker.
func (b *InProc) UserOnline(user string) {
	b.fabric.send(&fabPresence{user: user, node: b.host.NodeID, delta: 1})
}

// UserOffline implements port.Broker.
func (b *InProc) UserOffline(user string) {
	b.fabric.send(&fabPresence{user: user, node: b.host.NodeID, delta: -1})
}

// State implements port.Broker.
func (b *InProc) State() port.BrokerState {
	return port.BrokerState{Kind: "inproc", Connected: !b.fabric.down.Load()}
}

// Close implements port.Broker: it forgets this node's subscriptions and
// presence, and stops the fabric if it was this broker's own.
func (b *InProc) Close(ctx context.Context) error {
	a := b.fabric.actor.Load()
	if b.fabric.closed.Load() || a == nil {
		return nil
	}
	_, _ = a.host.Request(a.ref, &fabLeave{node: b.host.NodeID}, 5*time.Second)
	if b.owned {
		b.fabric.Close()
	}
	return nil
}

// target is a subscriber: an actor in some node's actor system.
type target struct {
	ref  port.Ref
	node string
}

// fabPublish is a node's envelope (env), or bytes from elsewhere (data).
type fabPublish struct {
	channel string
	env     *wire.Envelope
	data    []byte
}

// from reports whether node published it.
func (m *fabPublish) from(node string) bool {
	if m.env != nil {
		return m.env.From(node)
	}
	return wire.EncodedFrom(string(m.data), node)
}

// encoded returns its bytes, encoding a node's envelope once.
func (m *fabPublish) encoded() []byte {
	if m.env != nil {
		return m.env.Encode()
	}
	return m.data
}

type fabSub struct {
	channel string
	t       target
	on      bool
}
type fabDirect struct {
	user string
	env  *wire.Envelope
	done func(int, error)
}
type fabPresence struct {
	user, node string
	delta      int
}
type fabNode struct {
	node    string
	t       target
	history port.HistoryConfig
}

// fabAppend is a room publication to number, keep and deliver.
type fabAppend struct {
	channel string
	env     *wire.Envelope
	done    func(wire.Position, error)
}

// fabRead is a read of a room's stream.
type fabRead struct {
	channel string
	q       port.StreamQuery
	done    func(port.StreamRead, error)
}
type fabLeave struct{ node string }

// fabricActor owns the fabric's state; only its Receive touches it.
type fabricActor struct {
	subs map[string][]target // channel -> subscribers
	// users: user -> the nodes that hold it (UserOnline, UserOffline: at
	// most once each per node). A slice, not a map: a user is usually on
	// one node, and a map per user cost about 0.3 KiB of every idle
	// connection of one user.
	users map[string][]string
	nodes map[string]target // node -> its hub
	// history holds the rooms' streams, set up with the history setting
	// of the first node that starts on the fabric; swept every sweepEvery.
	history   *streams
	lastSweep time.Time
	// rooms is every node's share of each room's presence: channel ->
	// node -> user -> member connections.
	rooms map[string]map[string]map[string]int
}

const sweepEvery = 30 * time.Second

func (a *fabricActor) Receive(ctx port.Context) {
	switch m := ctx.Message().(type) {
	case *fabPublish:
		// The publishing node has delivered locally already: its own
		// subscribers are skipped, and an envelope nobody else wants (every
		// publish on a single node) is never encoded. What crosses nodes is
		// encoded and decoded, as it is over Redis.
		var in *port.Inbound
		for _, t := range a.subs[m.channel] {
			if m.from(t.node) {
				continue
			}
			if in == nil {
				var err error
				if in, err = port.NewInbound(m.encoded()); err != nil {
					return
				}
			}
			ctx.Send(t.ref, in)
		}
	case *fabAppend:
		if a.history == nil {
			if m.done != nil {
				m.done(wire.Position{}, port.ErrUnavailable)
			}
			return
		}
		a.sweep()
		in := a.history.append(m.channel, m.env)
		for _, t := range a.subs[m.channel] {
			ctx.Send(t.ref, in)
		}
		if m.done != nil {
			m.done(m.env.Pos, nil)
		}
	case *fabMember:
		a.member(m)
	case *fabPresenceQuery:
		all := map[string]int{}
		for _, users := range a.rooms[m.channel] {
			for u, n := range users {
				all[u] += n
			}
		}
		m.done(wire.NewPresence(all), nil)
	case *fabRead:
		if a.history == nil {
			m.done(port.StreamRead{}, port.ErrUnavailable)
			return
		}
		a.sweep()
		m.done(a.history.read(m.channel, m.q), nil)
	case *fabSub:
		ts := a.subs[m.channel]
		for i, t := range ts {
			if t.ref.Equal(m.t.ref) && t.node == m.t.node {
				ts = append(ts[:i], ts[i+1:]...)
				break
			}
		}
		if m.on {
			ts = append(ts, m.t)
			ctx.Send(m.t.ref, &port.Subscribed{Channel: m.channel})
		}
		if len(ts) == 0 {
			delete(a.subs, m.channel)
		} else {
			a.subs[m.channel] = ts
		}
	case *fabDirect:
		n := 0
		var in *port.Inbound
		for _, node := range a.users[m.user] {
			if m.env.From(node) {
				continue
			}
			t, ok := a.nodes[node]
			if !ok {
				continue
			}
			if in == nil {
				var err error
				if in, err = port.NewInbound(m.env.Encode()); err != nil {
					m.done(0, err)
					return
				}
			}
			ctx.Send(t.ref, in)
			n++
		}
		m.done(n, nil)
	case *fabPresence:
		nodes := a.users[m.user]
		i := slices.Index(nodes, m.node)
		switch {
		case m.delta > 0 && i < 0:
			a.users[m.user] = append(nodes, m.node)
		case m.delta < 0 && i >= 0:
			if nodes = slices.Delete(nodes, i, i+1); len(nodes) == 0 {
				delete(a.users, m.user)
			} else {
				a.users[m.user] = nodes
			}
		}
	case *fabNode:
		a.nodes[m.node] = m.t
		if a.history == nil && m.history.Size > 0 {
			a.history = newStreams(m.history, 0)
		}
	case *fabLeave:
		delete(a.nodes, m.node)
		a.forgetNode(m.node)
		for ch, ts := range a.subs {
			kept := ts[:0]
			for _, t := range ts {
				if t.node != m.node {
					kept = append(kept, t)
				}
			}
			if len(kept) == 0 {
				delete(a.subs, ch)
			} else {
				a.subs[ch] = kept
			}
		}
		for u, nodes := range a.users {
			if i := slices.Index(nodes, m.node); i >= 0 {
				nodes = slices.Delete(nodes, i, i+1)
				a.users[u] = nodes
			}
			if len(nodes) == 0 {
				delete(a.users, u)
			}
		}
		ctx.Respond(true)
	}
}

// sweep forgets expired streams, at most once per sweepEvery.
func (a *fabricActor) sweep() {
	if now := time.Now(); now.Sub(a.lastSweep) >= sweepEvery {
		a.lastSweep = now
		a.history.sweep()
	}
}
