package actors

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Benchmarks of the hot paths: taking in a broker envelope, and a room's
// fan-out through the actors to fake connections (the codecs' own are in
// package wire). Run with `make bench`; figures are in docs/benchmarks.md.

var benchContent = strings.Repeat("x", 64)

// BenchmarkNewInbound is an envelope from the broker as a node takes it:
// decoded (wire.DecodeEnvelope) and framed once.
func BenchmarkNewInbound(b *testing.B) {
	ev := wire.ChatEvent("user-1234", "lobby", benchContent)
	data := (&wire.Envelope{Type: wire.EnvRoom, Room: "lobby", Node: "node-1", Payload: ev.JSON}).Encode()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := NewInbound(data); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSink counts the frames every fake connection of a benchmark is
// handed and signals when a target count is reached.
type benchSink struct {
	frames  atomic.Int64
	flushes atomic.Int64
	target  atomic.Int64
	reached chan struct{}
}

func newBenchSink() *benchSink { return &benchSink{reached: make(chan struct{}, 1)} }

// expect arms the sink: reached is signalled when frames reaches n.
func (s *benchSink) expect(n int64) {
	s.target.Store(n)
	if s.frames.Load() >= n {
		s.signal()
	}
}

func (s *benchSink) signal() {
	select {
	case s.reached <- struct{}{}:
	default:
	}
}

func (s *benchSink) wait(b *testing.B, what string) {
	select {
	case <-s.reached:
	case <-time.After(time.Minute):
		b.Fatalf("%s: %d frames, want %d", what, s.frames.Load(), s.target.Load())
	}
}

// benchConn is a Conn that only counts: the fan-out is measured without
// sockets.
type benchConn struct{ sink *benchSink }

func (c benchConn) Enqueue([]byte) bool {
	if n := c.sink.frames.Add(1); n == c.sink.target.Load() {
		c.sink.signal()
	}
	return true
}
func (c benchConn) Flush()                       { c.sink.flushes.Add(1) }
func (c benchConn) Close(wire.CloseCode, string) {}
func (c benchConn) Abort(wire.CloseCode, string) {}

// fanoutNode is a node with members sessions on fake connections, all in
// one room.
type fanoutNode struct {
	node    *Node
	sink    *benchSink
	members []*actor.PID
}

// spawnSession spawns a session actor made by producer, with the node's
// session supervision and dispatcher; the producer's session starts at once.
func (n *Node) spawnSession(producer actor.Producer) *actor.PID {
	props := actor.PropsFromProducer(producer, actor.WithGuardian(n.sessionGuardian), actor.WithDispatcher(n.sessionPool))
	return n.root.SpawnPrefix(props, "session-")
}

// benchSession is the real session actor plus one benchmark-only message,
// benchJoin: a join that takes effect without user_joined events. Joining
// 10,000 members through join_room would first fan out 50 million presence
// events (each join reaches every member already in the room).
type benchSession struct{ session }

type benchJoin struct{ room string }

// benchForget makes a session drop a room without telling it (for a
// teardown without user_left); the session answers true.
type benchForget struct{ room string }

func (b *benchSession) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *benchJoin:
		// What JoinRoomCmd does, with the room told to stay silent.
		if b.rooms == nil {
			b.rooms = make(map[string]*actor.PID)
		}
		b.rooms[m.room] = nil
		b.joining++
		b.joinSent(m.room)
		ctx.Send(b.node.hub, &joinRoom{room: m.room, session: b.self, user: b.opts.User, silent: true})
	case *benchForget:
		delete(b.rooms, m.room)
		ctx.Respond(true)
	default:
		b.session.Receive(ctx)
	}
}

func newFanoutNode(b *testing.B, broker Broker, members int) *fanoutNode {
	b.Helper()
	node, err := NewNode(Config{Broker: broker, RatePerSecond: -1, PingInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	f := &fanoutNode{node: node, sink: newBenchSink()}
	b.Cleanup(f.close)
	// Every session sends a welcome when it starts. They all belong to one
	// user: distinct users would first cost a user_connected to every
	// session for each of them.
	f.sink.expect(int64(members))
	for i := 0; i < members; i++ {
		opts := SessionOptions{User: "bench"}
		f.members = append(f.members, node.spawnSession(func() actor.Actor {
			return &benchSession{session{node: node, conn: benchConn{sink: f.sink}, opts: opts}}
		}))
	}
	f.sink.wait(b, "welcomes")
	return f
}

// close tears the node down without the quadratic goodbye: a member that
// leaves a live room costs a user_left to every remaining member (50 million
// events for 10,000 members), and that work would overlap the next
// measurement. So the sessions first forget the room (they will not
// re-join it, nor leave it), then the hub and with it the room stop, then
// the sessions.
func (f *fanoutNode) close() {
	forgets := make([]*actor.Future, 0, len(f.members))
	for _, pid := range f.members {
		forgets = append(forgets, f.node.root.RequestFuture(pid, &benchForget{room: "lobby"}, time.Minute))
	}
	for _, fu := range forgets {
		_, _ = fu.Result()
	}
	f.node.root.StopFuture(f.node.hub).Wait()
	stops := make([]*actor.Future, 0, len(f.members))
	for _, pid := range f.members {
		stops = append(stops, f.node.root.StopFuture(pid))
	}
	for _, fu := range stops {
		_ = fu.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = f.node.Shutdown(ctx)
}

// join puts every member in room and waits until the room has them all.
// Each session is told of its membership (roomJoined) before the room
// answers the query, so a command sent to a member afterwards finds it in.
func (f *fanoutNode) join(b *testing.B, room string) {
	b.Helper()
	for _, pid := range f.members {
		f.node.root.Send(pid, &benchJoin{room: room})
	}
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := f.node.root.RequestFuture(f.node.hub, &DirectoryQuery{}, 10*time.Second).Result()
		if err != nil {
			b.Fatal(err)
		}
		if id, ok := res.(*Directory).Rooms[room]; ok {
			rm, err := f.node.root.RequestFuture(f.node.system.NewLocalPID(id), &RoomQuery{}, 10*time.Second).Result()
			if err != nil {
				b.Fatal(err)
			}
			if len(rm.(*RoomMembers).Members) == len(f.members) {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("members did not join")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkRoomFanout sends room messages from one member's session and
// stops the timer only when every member's connection has been handed every
// message. One op is one message to all members; ns/delivery and
// allocs/delivery divide by the member count.
func BenchmarkRoomFanout(b *testing.B) {
	for _, members := range []int{100, 1000, 10000} {
		for _, mode := range []string{"pipelined", "one_at_a_time"} {
			b.Run("members="+strconv.Itoa(members)+"/"+mode, func(b *testing.B) {
				benchRoomFanout(b, members, mode == "pipelined")
			})
		}
	}
}

func benchRoomFanout(b *testing.B, members int, pipelined bool) {
	f := newFanoutNode(b, newBenchBroker(), members)
	f.join(b, "lobby")
	sender := f.members[0]
	cmd := &wire.RoomMessageCmd{Room: "lobby", Content: benchContent}
	base := f.sink.frames.Load()
	f.sink.expect(base + int64(members))
	f.node.root.Send(sender, cmd)
	f.sink.wait(b, "first message")

	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	base = f.sink.frames.Load()
	flushes := f.sink.flushes.Load()
	if pipelined {
		f.sink.expect(base + int64(b.N)*int64(members))
		for i := 0; i < b.N; i++ {
			f.node.root.Send(sender, cmd)
		}
		f.sink.wait(b, "fan-out")
	} else {
		for i := 1; i <= b.N; i++ {
			f.sink.expect(base + int64(i)*int64(members))
			f.node.root.Send(sender, cmd)
			f.sink.wait(b, "fan-out")
		}
	}
	b.StopTimer()
	deliveries := float64(b.N) * float64(members)
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(processCPU()-cpu0)/deliveries, "cpu-ns/delivery")
	b.ReportMetric(deliveries/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(f.sink.flushes.Load()-flushes)/deliveries, "flushes/delivery")
}

// processCPU is the CPU time (user + system) this process has used, in
// nanoseconds. Per delivery it is steadier than wall time on a shared
// machine: other processes' load stretches the wall clock, not our CPU.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchBroker is a Broker that accepts every publish and delivers nothing
// but the room streams' publications, numbered and handed straight back
// to the room (no envelope encode or decode): a single node's fan-out
// without the in-process fabric. It confirms every subscription at once.
type benchBroker struct {
	host port.ActorHost
	mu   sync.Mutex
	subs map[string]port.Ref
	tops map[string]uint64
}

func newBenchBroker() Broker {
	return &benchBroker{subs: map[string]port.Ref{}, tops: map[string]uint64{}}
}

func (b *benchBroker) Start(h BrokerHost) error { b.host = h.Actors; return nil }
func (b *benchBroker) Subscribe(channel string, target port.Ref) {
	b.mu.Lock()
	b.subs[channel] = target
	b.mu.Unlock()
	b.host.Send(target, &Subscribed{Channel: channel})
}
func (b *benchBroker) Append(channel string, env *wire.Envelope, done func(wire.Position, error)) error {
	b.mu.Lock()
	b.tops[channel]++
	env.Pos = wire.Position{Offset: b.tops[channel], Epoch: "bench"}
	target, ok := b.subs[channel]
	b.mu.Unlock()
	if ok {
		b.host.Send(target, InboundOf(env))
	}
	if done != nil {
		done(env.Pos, nil)
	}
	return nil
}
func (b *benchBroker) Read(channel string, _ StreamQuery, done func(StreamRead, error)) {
	b.mu.Lock()
	top := b.tops[channel]
	b.mu.Unlock()
	done(StreamRead{Pos: wire.Position{Offset: top, Epoch: "bench"}}, nil)
}
func (*benchBroker) Publish(string, *wire.Envelope) error                         { return nil }
func (*benchBroker) RoomMember(string, string, int)                               {}
func (*benchBroker) Presence(_ string, done func(wire.Presence, error))           { done(wire.Presence{}, nil) }
func (*benchBroker) Unsubscribe(string, port.Ref)                                 {}
func (*benchBroker) SendDirect(_ string, _ *wire.Envelope, done func(int, error)) { done(0, nil) }
func (*benchBroker) UserOnline(string)                                            {}
func (*benchBroker) UserOffline(string)                                           {}
func (*benchBroker) State() BrokerState                                           { return BrokerState{Kind: "bench", Connected: true} }
func (*benchBroker) Close(context.Context) error                                  { return nil }
