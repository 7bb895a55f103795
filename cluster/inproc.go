package cluster

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Fabric is an in-process pub/sub fabric shared by the nodes of one process.
// Its state (subscriptions, presence) is owned by one actor; brokers talk to
// it with messages, so Publish never blocks.
type Fabric struct {
	system *actor.ActorSystem
	pid    *actor.PID
	down   atomic.Bool
	closed atomic.Bool
}

// NewFabric starts a fabric.
func NewFabric() *Fabric {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}))
	f := &Fabric{system: sys}
	f.pid = sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return &fabricActor{subs: map[string][]target{}, users: map[string]map[string]int{}, nodes: map[string]target{}}
	}))
	return f
}

// SetDown simulates an outage: while down, Publish and SendDirect refuse with
// actors.ErrUnavailable and State reports disconnected. For tests.
func (f *Fabric) SetDown(down bool) { f.down.Store(down) }

// Close stops the fabric.
func (f *Fabric) Close() {
	if f.closed.CompareAndSwap(false, true) {
		f.system.Root.StopFuture(f.pid).Wait()
		f.system.Shutdown()
	}
}

// PublishEncoded delivers data to every subscriber of channel as it is:
// what a backend's PUBLISH of bytes that no node encoded is on Redis (for
// tests of what a node does with them). Never blocks.
func (f *Fabric) PublishEncoded(channel string, data []byte) {
	f.system.Root.Send(f.pid, &fabPublish{channel: channel, data: data})
}

// Broker returns a new node-side broker on this fabric.
func (f *Fabric) Broker() *InProc { return &InProc{fabric: f} }

// InProc is the in-process actors.Broker.
type InProc struct {
	fabric *Fabric
	owned  bool // the fabric was created for this broker alone
	host   actors.BrokerHost
}

var _ actors.Broker = (*InProc)(nil)

// NewInProc returns a broker on a fabric of its own: a single node.
func NewInProc() *InProc {
	b := NewFabric().Broker()
	b.owned = true
	return b
}

// Start implements actors.Broker.
func (b *InProc) Start(host actors.BrokerHost) error {
	b.host = host
	b.fabric.system.Root.Send(b.fabric.pid, &fabNode{node: host.NodeID, t: target{root: host.Root, pid: host.Hub, node: host.NodeID}, history: host.History})
	return nil
}

// Publish implements actors.Broker.
func (b *InProc) Publish(channel string, env *wire.Envelope) error {
	if b.fabric.down.Load() {
		return actors.ErrUnavailable
	}
	b.fabric.system.Root.Send(b.fabric.pid, &fabPublish{channel: channel, env: env})
	return nil
}

// Subscribe implements actors.Broker.
func (b *InProc) Subscribe(channel string, pid *actor.PID) {
	b.fabric.system.Root.Send(b.fabric.pid, &fabSub{channel: channel, t: target{root: b.host.Root, pid: pid, node: b.host.NodeID}, on: true})
}

// Unsubscribe implements actors.Broker.
func (b *InProc) Unsubscribe(channel string, pid *actor.PID) {
	b.fabric.system.Root.Send(b.fabric.pid, &fabSub{channel: channel, t: target{root: b.host.Root, pid: pid, node: b.host.NodeID}})
}

// Append implements actors.Broker: the fabric numbers env in the room's
// stream and delivers it to every subscriber, this node's included.
func (b *InProc) Append(channel string, env *wire.Envelope, done func(wire.Position, error)) error {
	if b.fabric.down.Load() {
		return actors.ErrUnavailable
	}
	b.fabric.system.Root.Send(b.fabric.pid, &fabAppend{channel: channel, env: env, done: done})
	return nil
}

// Read implements actors.Broker.
func (b *InProc) Read(channel string, q actors.StreamQuery, done func(actors.StreamRead, error)) {
	if b.fabric.down.Load() {
		done(actors.StreamRead{}, actors.ErrUnavailable)
		return
	}
	b.fabric.system.Root.Send(b.fabric.pid, &fabRead{channel: channel, q: q, done: done})
}

// SendDirect implements actors.Broker.
func (b *InProc) SendDirect(user string, env *wire.Envelope, done func(int, error)) {
	if b.fabric.down.Load() {
		done(0, actors.ErrUnavailable)
		return
	}
	b.fabric.system.Root.Send(b.fabric.pid, &fabDirect{user: user, env: env, done: done})
}

// UserOnline implements actors.Broker.
func (b *InProc) UserOnline(user string) {
	b.fabric.system.Root.Send(b.fabric.pid, &fabPresence{user: user, node: b.host.NodeID, delta: 1})
}

// UserOffline implements actors.Broker.
func (b *InProc) UserOffline(user string) {
	b.fabric.system.Root.Send(b.fabric.pid, &fabPresence{user: user, node: b.host.NodeID, delta: -1})
}

// State implements actors.Broker.
func (b *InProc) State() actors.BrokerState {
	return actors.BrokerState{Kind: "inproc", Connected: !b.fabric.down.Load()}
}

// Close implements actors.Broker: it forgets this node's subscriptions and
// presence, and stops the fabric if it was this broker's own.
func (b *InProc) Close(ctx context.Context) error {
	if b.fabric.closed.Load() {
		return nil
	}
	f := b.fabric.system.Root.RequestFuture(b.fabric.pid, &fabLeave{node: b.host.NodeID}, 5*time.Second)
	_, _ = f.Result()
	if b.owned {
		b.fabric.Close()
	}
	return nil
}

// target is a subscriber: an actor in some node's actor system.
type target struct {
	root *actor.RootContext
	pid  *actor.PID
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
	history actors.HistoryConfig
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
	q       actors.StreamQuery
	done    func(actors.StreamRead, error)
}
type fabLeave struct{ node string }

// fabricActor owns the fabric's state; only its Receive touches it.
type fabricActor struct {
	subs  map[string][]target       // channel -> subscribers
	users map[string]map[string]int // user -> node -> connections reported
	nodes map[string]target         // node -> its hub
	// history holds the rooms' streams, set up with the history setting
	// of the first node that starts on the fabric; swept every sweepEvery.
	history   *streams
	lastSweep time.Time
}

const sweepEvery = 30 * time.Second

func (a *fabricActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *fabPublish:
		// The publishing node has delivered locally already: its own
		// subscribers are skipped, and an envelope nobody else wants (every
		// publish on a single node) is never encoded. What crosses nodes is
		// encoded and decoded, as it is over Redis.
		var in *actors.Inbound
		for _, t := range a.subs[m.channel] {
			if m.from(t.node) {
				continue
			}
			if in == nil {
				var err error
				if in, err = actors.NewInbound(m.encoded()); err != nil {
					return
				}
			}
			t.root.Send(t.pid, in)
		}
	case *fabAppend:
		if a.history == nil {
			if m.done != nil {
				m.done(wire.Position{}, actors.ErrUnavailable)
			}
			return
		}
		a.sweep()
		in := a.history.append(m.channel, m.env)
		for _, t := range a.subs[m.channel] {
			t.root.Send(t.pid, in)
		}
		if m.done != nil {
			m.done(m.env.Pos, nil)
		}
	case *fabRead:
		if a.history == nil {
			m.done(actors.StreamRead{}, actors.ErrUnavailable)
			return
		}
		a.sweep()
		m.done(a.history.read(m.channel, m.q), nil)
	case *fabSub:
		ts := a.subs[m.channel]
		for i, t := range ts {
			if t.pid.Equal(m.t.pid) && t.node == m.t.node {
				ts = append(ts[:i], ts[i+1:]...)
				break
			}
		}
		if m.on {
			ts = append(ts, m.t)
			m.t.root.Send(m.t.pid, &actors.Subscribed{Channel: m.channel})
		}
		if len(ts) == 0 {
			delete(a.subs, m.channel)
		} else {
			a.subs[m.channel] = ts
		}
	case *fabDirect:
		n := 0
		var in *actors.Inbound
		for node := range a.users[m.user] {
			if m.env.From(node) {
				continue
			}
			t, ok := a.nodes[node]
			if !ok {
				continue
			}
			if in == nil {
				var err error
				if in, err = actors.NewInbound(m.env.Encode()); err != nil {
					m.done(0, err)
					return
				}
			}
			t.root.Send(t.pid, in)
			n++
		}
		m.done(n, nil)
	case *fabPresence:
		nodes := a.users[m.user]
		if nodes == nil {
			nodes = map[string]int{}
			a.users[m.user] = nodes
		}
		nodes[m.node] += m.delta
		if nodes[m.node] <= 0 {
			delete(nodes, m.node)
		}
		if len(nodes) == 0 {
			delete(a.users, m.user)
		}
	case *fabNode:
		a.nodes[m.node] = m.t
		if a.history == nil && m.history.Size > 0 {
			a.history = newStreams(m.history, 0)
		}
	case *fabLeave:
		delete(a.nodes, m.node)
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
			delete(nodes, m.node)
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
