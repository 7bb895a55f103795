package redis_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// recorder keeps what one client received, from its read goroutine.
type recorder struct {
	mu     sync.Mutex
	acks   map[string]bool              // ids acknowledged
	errs   map[string]string            // id -> error code
	got    map[string]map[string]int    // sender -> content -> times received
	order  map[string][]string          // sender -> contents in arrival order
	events map[string][]*wsclient.Event // other events, by name
	// The room streams' positions (docs/protocol.md, section 6): within
	// an epoch every offset once, in order; a new epoch from offset 1.
	pos    map[string]wsclient.Event // room -> last chat's position
	breaks []string                  // violations of that, as found
	// unnumbered: the nodes keep no history, room chats have no position.
	// Set before the traffic starts.
	unnumbered bool
}

func newRecorder() *recorder {
	return &recorder{
		acks: map[string]bool{}, errs: map[string]string{},
		got: map[string]map[string]int{}, order: map[string][]string{}, events: map[string][]*wsclient.Event{},
		pos: map[string]wsclient.Event{},
	}
}

func (r *recorder) add(e *wsclient.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := strings.Trim(string(e.ID), `"`)
	switch e.Event {
	case "ack":
		r.acks[id] = true
	case "error":
		r.errs[id] = e.Code
	case "chat":
		if r.got[e.From] == nil {
			r.got[e.From] = map[string]int{}
		}
		r.got[e.From][e.Content]++
		r.order[stream(e.From, e.Room)] = append(r.order[stream(e.From, e.Room)], e.Content)
		if e.Room != "" && !r.unnumbered {
			last, seen := r.pos[e.Room]
			switch {
			case e.Epoch == "" || e.Offset == 0:
				r.breaks = append(r.breaks, "a room chat without its position: "+string(e.Raw))
			case seen && e.Epoch == last.Epoch && e.Offset != last.Offset+1:
				r.breaks = append(r.breaks, fmt.Sprintf("offset %d after %d in epoch %s", e.Offset, last.Offset, e.Epoch))
			case seen && e.Epoch != last.Epoch && e.Offset != 1:
				r.breaks = append(r.breaks, fmt.Sprintf("epoch %s began at offset %d", e.Epoch, e.Offset))
			}
			r.pos[e.Room] = wsclient.Event{Offset: e.Offset, Epoch: e.Epoch}
		}
	default:
		r.events[e.Event] = append(r.events[e.Event], e)
	}
}

func (r *recorder) outcome(id string) (acked bool, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[id], r.errs[id]
}

func (r *recorder) count(from, content string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[from][content]
}

// arrivals returns the contents received from sender in one room (or as
// chat, room ""), in arrival order. Order is kept per stream: a sender's
// chats and its room messages travel different paths (hub, room actor;
// different channels), so only each stream's order is defined.
func (r *recorder) arrivals(from, room string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order[stream(from, room)]...)
}

func stream(from, room string) string { return from + "/" + room }

// dialRecorded connects id to n with a recorder and waits for its welcome.
func dialRecorded(t *testing.T, n *testNode, id string) (*wsclient.Client, *recorder) {
	t.Helper()
	rec := newRecorder()
	c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{OnEvent: rec.add})
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, id+" welcome", 5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.events["welcome"]) == 1
	})
	return c, rec
}

// trafficSender sends room messages (even numbers) and chats (odd numbers)
// until stopped, each with an id, paced so that a fault hits mid-stream.
type trafficSender struct {
	name   string
	c      *wsclient.Client
	rec    *recorder
	mu     sync.Mutex
	sent   int
	sentAt []time.Time // when each message was written to the socket
	stop   chan struct{}
	done   chan struct{}
}

const trafficRoom = "live"

func (s *trafficSender) run(max int, every time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := range max {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		msg := map[string]any{"type": "chat", "content": seq(s.name, i), "id": seq(s.name, i)}
		if i%2 == 0 {
			msg["type"], msg["room"] = "room_message", trafficRoom
		}
		s.mu.Lock()
		s.sentAt = append(s.sentAt, time.Now())
		err := s.c.SendJSON(msg)
		s.sent = i + 1
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// sentBefore reports whether message id was sent before t.
func (s *trafficSender) sentBefore(id string, t time.Time) bool {
	var i int
	fmt.Sscanf(strings.TrimPrefix(id, s.name+"-"), "%d", &i)
	s.mu.Lock()
	defer s.mu.Unlock()
	return i < len(s.sentAt) && s.sentAt[i].Before(t)
}

func (s *trafficSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// faultScenario runs traffic from a sender on each of two nodes to a
// listener on each node, injects a fault mid-stream, and checks that every
// message either arrived exactly once at every listener, in its sender's
// order, or was refused to its sender with `unavailable`, and never both.
type faultScenario struct {
	t         *testing.T
	faultAt   time.Time // when the fault was injected
	rs        *redistest.Server
	nodes     []*testNode
	senders   []*trafficSender
	listeners []*recorder
}

func newFaultScenario(t *testing.T, rs *redistest.Server, opts ...nodeOpt) *faultScenario {
	f := &faultScenario{t: t, rs: rs}
	for i := 1; i <= 2; i++ {
		n := startNode(t, rs.URL(), fmt.Sprintf("n%d", i), opts...)
		f.nodes = append(f.nodes, n)
		lc, lrec := dialRecorded(t, n, fmt.Sprintf("listener%d", i))
		sc, srec := dialRecorded(t, n, fmt.Sprintf("s%d", i))
		for _, c := range []*wsclient.Client{lc, sc} {
			_ = c.SendJSON(map[string]any{"type": "join_room", "room": trafficRoom})
		}
		f.listeners = append(f.listeners, lrec)
		f.senders = append(f.senders, &trafficSender{name: fmt.Sprintf("s%d", i), c: sc, rec: srec, stop: make(chan struct{}), done: make(chan struct{})})
	}
	rs.WaitNumSub(roomChannel(trafficRoom), 2, 5*time.Second)
	return f
}

// start sends up to max messages per sender, one every `every`.
func (f *faultScenario) start(max int, every time.Duration) {
	for _, s := range f.senders {
		go s.run(max, every)
	}
}

func (f *faultScenario) waitSent(n int) {
	waitFor(f.t, fmt.Sprintf("%d messages sent per sender", n), 10*time.Second, func() bool {
		for _, s := range f.senders {
			if s.count() < n {
				return false
			}
		}
		return true
	})
}

// inject runs fault and records when it began. Messages sent after that
// instant must arrive or be refused. A message already on its way when the
// fault struck could be lost to Redis (it discards what it had not yet
// written to a subscriber it closes) if the broker did not send it again;
// finish counts those apart, and the tests require none.
func (f *faultScenario) inject(fault func()) {
	f.faultAt = time.Now()
	fault()
}

// finish stops the senders and checks every message's fate. It returns the
// number of messages acknowledged, refused, and lost in flight at the fault
// (summed over listeners).
func (f *faultScenario) finish() (acked, refused, inFlightLost int) {
	t := f.t
	for _, s := range f.senders {
		close(s.stop)
		<-s.done
	}
	for _, s := range f.senders {
		waitFor(t, s.name+": every message acknowledged or refused", 15*time.Second, func() bool {
			for i := range s.count() {
				if a, code := s.rec.outcome(seq(s.name, i)); !a && code == "" {
					return false
				}
			}
			return true
		})
	}
	for _, s := range f.senders {
		want := map[string][]string{} // room ("" for chat) -> acknowledged ids in order
		for i := range s.count() {
			id := seq(s.name, i)
			a, code := s.rec.outcome(id)
			room := ""
			if i%2 == 0 {
				room = trafficRoom
			}
			switch {
			case a && code != "":
				t.Fatalf("%s both acknowledged and refused (%s)", id, code)
			case a:
				acked++
				want[room] = append(want[room], id)
			case code != "unavailable":
				t.Fatalf("%s refused with %q, want unavailable", id, code)
			default:
				refused++
			}
		}
		for li, l := range f.listeners {
			for room, w := range want {
				last := w[len(w)-1]
				waitFor(t, fmt.Sprintf("listener%d: %s's last message", li+1, s.name), 15*time.Second, func() bool { return l.count(s.name, last) > 0 })
				got := l.arrivals(s.name, room)
				// got must be w, in order, without repeats, except for
				// messages sent before the fault that it lost.
				j := 0
				for _, g := range got {
					for j < len(w) && w[j] != g {
						if s.sentBefore(w[j], f.faultAt) {
							inFlightLost++
							t.Logf("listener%d lost %s, on its way when the fault struck", li+1, w[j])
							j++
							continue
						}
						missing, extra := diff(w, got)
						t.Fatalf("listener%d: %s's messages (room %q) missing, repeated or out of order at %s; missing %v, unexpected or repeated %v",
							li+1, s.name, room, w[j], missing, extra)
					}
					if j == len(w) {
						missing, extra := diff(w, got)
						t.Fatalf("listener%d: %s's messages (room %q): unexpected %s; missing %v, unexpected or repeated %v", li+1, s.name, room, g, missing, extra)
					}
					j++
				}
			}
		}
	}
	for li, l := range f.listeners {
		l.mu.Lock()
		if len(l.breaks) > 0 {
			t.Errorf("listener%d: the room's stream has gaps or repeats: %v", li+1, l.breaks)
		}
		l.mu.Unlock()
	}
	return acked, refused, inFlightLost
}

// diff returns what want has that got lacks, and what got has beyond want
// (refused messages that arrived, or duplicates).
func diff(want, got []string) (missing, extra []string) {
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		if seen[w] == 0 {
			missing = append(missing, w)
		} else {
			seen[w]--
		}
	}
	for g, n := range seen {
		for range n {
			extra = append(extra, g)
		}
	}
	return missing, extra
}

func (f *faultScenario) allConnected() bool {
	for _, n := range f.nodes {
		if !n.node.BrokerState().Connected {
			return false
		}
	}
	return true
}

// TestRedisRestartMidTraffic stops redis-server under traffic and starts it
// again on the same port.
func TestRedisRestartMidTraffic(t *testing.T) {
	rs := startRedis(t)
	// Production reconnect backoff (50 ms doubling to 1 s), so that the
	// time the subscriptions take to come back is the one operators see.
	f := newFaultScenario(t, rs, withBroker(func(c *redis.Config) {
		c.OutboxLimit, c.ReconnectMin, c.ReconnectMax = 40, 0, 0
	}))
	f.start(400, 4*time.Millisecond)
	f.waitSent(60)

	f.inject(rs.Stop)
	waitFor(t, "both nodes report the broker down", 5*time.Second, func() bool {
		for _, n := range f.nodes {
			if n.node.BrokerState().Connected || n.ready() != 503 {
				return false
			}
		}
		return true
	})
	// Local traffic goes on; publishes wait in the outbox, then are refused.
	waitFor(t, "a publish refused while the outbox is full", 5*time.Second, func() bool {
		return f.nodes[0].broker.Stats().Refused > 0 && f.nodes[1].broker.Stats().Refused > 0
	})
	f.waitSent(f.senders[0].count() + 60) // traffic goes on during the outage
	back := time.Now()
	rs.Restart()
	waitFor(t, "subscriptions restored", 10*time.Second, f.allConnected)
	resub := time.Since(back)
	for _, n := range f.nodes {
		if n.ready() != 200 {
			t.Fatalf("%s /readyz not 200 after recovery", n.id)
		}
	}
	f.waitSent(f.senders[0].count() + 60)
	acked, refused, lost := f.finish()
	t.Logf("redis restart: %d messages acknowledged and delivered exactly once in order, %d refused with unavailable, "+
		"%d deliveries lost in flight at the fault; subscriptions back %v after redis-server was started again (n1 outage %v, n2 outage %v)",
		acked, refused, lost, resub.Round(time.Millisecond),
		f.nodes[0].broker.Stats().LastRecovery.Round(time.Millisecond), f.nodes[1].broker.Stats().LastRecovery.Round(time.Millisecond))
	if refused == 0 {
		t.Fatal("no message was refused: the outbox limit was not exercised")
	}
	if lost != 0 {
		t.Fatalf("%d deliveries lost", lost)
	}
}

// TestRedisClientKillPubSubMidTraffic closes every subscriber connection
// from the server side (CLIENT KILL TYPE pubsub) under traffic.
func TestRedisClientKillPubSubMidTraffic(t *testing.T) {
	rs := startRedis(t)
	f := newFaultScenario(t, rs)
	f.start(400, 3*time.Millisecond)
	f.waitSent(60)
	before := f.nodes[0].broker.Stats().Reconnects + f.nodes[1].broker.Stats().Reconnects
	var killed int64
	f.inject(func() { killed = rs.KillPubSub() })
	start := time.Now()
	if killed != 4 {
		t.Fatalf("killed %d pub/sub connections, want 4 (2 per node)", killed)
	}
	waitFor(t, "every node reconnected", 5*time.Second, func() bool {
		return f.nodes[0].broker.Stats().Reconnects+f.nodes[1].broker.Stats().Reconnects >= before+4 && f.allConnected()
	})
	resub := time.Since(start)
	f.waitSent(f.senders[0].count() + 60)
	acked, refused, lost := f.finish()
	if lost != 0 {
		t.Fatalf("%d deliveries lost", lost)
	}
	resent := f.nodes[0].broker.Stats().Resent + f.nodes[1].broker.Stats().Resent
	dups := f.nodes[0].broker.Stats().Duplicates + f.nodes[1].broker.Stats().Duplicates
	t.Logf("CLIENT KILL TYPE pubsub: %d acknowledged and delivered exactly once in order, %d refused; "+
		"%d publishes sent again, %d copies dropped by msg_id; subscriptions back within %v",
		acked, refused, resent, dups, resub.Round(time.Millisecond))
}

// TestRedisPauseMidTraffic pauses Redis (CLIENT PAUSE) for less than the
// probe timeout: messages are delayed, none is lost or repeated.
func TestRedisPauseMidTraffic(t *testing.T) {
	rs := startRedis(t)
	f := newFaultScenario(t, rs, withBroker(func(c *redis.Config) { c.ProbeTimeout = 2 * time.Second }))
	f.start(300, 3*time.Millisecond)
	f.waitSent(60)
	f.inject(func() { rs.Pause(300 * time.Millisecond) })
	f.waitSent(f.senders[0].count() + 120)
	acked, refused, lost := f.finish()
	if refused != 0 || lost != 0 {
		t.Fatalf("%d messages refused and %d lost during a short pause", refused, lost)
	}
	for _, n := range f.nodes {
		if r := n.broker.Stats().Reconnects; r != 0 {
			t.Fatalf("%s reconnected %d times during a pause shorter than the probe timeout", n.id, r)
		}
	}
	t.Logf("CLIENT PAUSE 300ms: %d messages delivered exactly once in order", acked)
}

// TestRedisCrashDirectMessages sends direct messages across two nodes while
// redis-server is SIGKILLed and restarted empty: each is delivered or
// refused with unavailable, never answered user_offline for a user who is
// connected all along.
func TestRedisCrashDirectMessages(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	a, arec := dialRecorded(t, n1, "alice")
	_, brec := dialRecorded(t, n2, "bob")
	waitFor(t, "alice sees bob", 5*time.Second, func() bool {
		arec.mu.Lock()
		defer arec.mu.Unlock()
		return len(arec.events["user_connected"]) > 0
	})
	// Each node must know the other from a heartbeat: that is what it
	// waits for, after the crash, before it routes a direct message again.
	waitFor(t, "nodes know each other", 5*time.Second, func() bool {
		return n1.broker.Stats().Peers == 1 && n2.broker.Stats().Peers == 1
	})
	const total = 300
	sentAt := make([]time.Time, total)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			sentAt[i] = time.Now()
			_ = a.SendJSON(map[string]any{"type": "direct_message", "target_user": "bob", "content": seq("dm", i), "id": seq("dm", i)})
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	rs.Kill()
	time.Sleep(300 * time.Millisecond)
	rs.Restart()
	<-done
	waitFor(t, "every direct message answered", 15*time.Second, func() bool {
		for i := range total {
			if ok, code := arec.outcome(seq("dm", i)); !ok && code == "" {
				return false
			}
		}
		return true
	})
	brec.mu.Lock()
	got := map[string]int{}
	for _, e := range brec.events["direct_message"] {
		got[e.Content]++
	}
	brec.mu.Unlock()
	delivered, refused, lost := 0, 0, 0
	for i := range total {
		id := seq("dm", i)
		ok, code := arec.outcome(id)
		switch {
		case ok && got[id] == 1:
			delivered++
		case ok && got[id] == 0 && sentAt[i].Before(killed):
			lost++ // on its way when Redis died, and not sent again
		case ok:
			t.Errorf("%s acknowledged, received %d times", id, got[id])
		case code == "unavailable" && got[id] == 0:
			refused++
		default:
			t.Errorf("%s: %s, received %d times", id, code, got[id])
		}
	}
	if lost != 0 {
		t.Errorf("%d direct messages lost", lost)
	}
	t.Logf("redis SIGKILL and restart: %d direct messages delivered exactly once, %d refused with unavailable", delivered, refused)
}
