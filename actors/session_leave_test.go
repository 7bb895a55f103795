package actors

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A session that stops leaves every room its joins may have made it a
// member of, also one it no longer names: here its join retry (the first
// join was slow) reaches the room only after the client left it, and the
// socket closes before the session hears the room's answer. Rooms do not
// watch their members, so without that leave the stopped session would
// stay a member for good, the room with it, and its presence elsewhere.
func TestLateJoinRetryOfAStoppedSessionIsLeft(t *testing.T) {
	b := &gateBroker{benchBroker: newBenchBroker().(*benchBroker),
		subChannel: RoomChannel("switchboard", "x"), subGate: make(chan struct{}), subEntered: make(chan struct{}),
		onlineUser: "v", onlineGate: make(chan struct{}), onlineEntered: make(chan struct{})}
	n := startQuietNode(t, Config{Broker: b, NodeID: "n1", PingInterval: time.Hour, JoinRetry: time.Hour, ChannelPrefix: "switchboard"})
	c := &gateConn{}
	h := n.Connect(c, SessionOptions{User: "u"})
	pid := pidOf(h)
	waitUntil(t, "welcome", func() bool { _, fl := c.snapshot(); return len(fl) >= 1 })

	n.Deliver(h, wire.DecodeCommand([]byte(`{"type":"join_room","room":"x","id":"j1"}`)))
	<-b.subEntered // the first join waits in room x, which is slow to start
	// The hub gets busy (another user's connection), then the join retry
	// passes: the session's second join waits in the hub.
	n.Connect(&recConn{}, SessionOptions{User: "v"})
	<-b.onlineEntered
	n.root.Send(pid, &joinTimeout{room: "x"})
	waitUntil(t, "the retry waiting in the hub", func() bool { return (*n.hubMailbox.Load()).UserMessageCount() > 0 })
	close(b.subGate)
	waitUntil(t, "join ack", func() bool { return c.has(`"j1"`) })
	n.Deliver(h, wire.DecodeCommand([]byte(`{"type":"leave_room","room":"x","id":"l1"}`)))
	waitUntil(t, "leave ack", func() bool { return c.has(`"l1"`) })
	waitUntil(t, "room x empty", func() bool { return len(roomMembersNamed(n, "x")) == 0 })

	// The session is busy writing when its socket closes; the hub then
	// forwards the retry, which makes the still-registered session a
	// member again.
	entered, release := c.hold()
	n.Deliver(h, wire.PresenceEvent("user_connected", "someone"))
	<-entered
	n.Deliver(h, &SocketClosed{})
	close(b.onlineGate)
	waitUntil(t, "the retry admitted", func() bool {
		m := roomMembersNamed(n, "x")
		return len(m) == 1 && m[0] == pid.Id
	})
	release()
	waitUntil(t, "the stopped session gone from room x", func() bool {
		return !n.live(pid) && len(roomMembersNamed(n, "x")) == 0
	})
}

// gateConn is recConn whose Enqueue can be held (the session busy writing
// while messages pile up in its mailbox).
type gateConn struct {
	recConn
	gmu     sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (c *gateConn) Enqueue(f []byte) bool {
	c.gmu.Lock()
	g, e := c.gate, c.entered
	c.gate = nil
	c.gmu.Unlock()
	if g != nil {
		close(e)
		<-g
	}
	return c.recConn.Enqueue(f)
}

// hold makes the next Enqueue wait until release; entered is closed when
// it does.
func (c *gateConn) hold() (entered <-chan struct{}, release func()) {
	c.gmu.Lock()
	defer c.gmu.Unlock()
	c.gate, c.entered = make(chan struct{}), make(chan struct{})
	g := c.gate
	return c.entered, func() { close(g) }
}

// has reports whether a frame written so far contains sub.
func (c *gateConn) has(sub string) bool {
	fr, _ := c.snapshot()
	for _, f := range fr {
		if strings.Contains(f, sub) {
			return true
		}
	}
	return false
}

// gateBroker is the bench broker with two hooks that block once: the
// Subscribe of subChannel (a room slow to start) and the UserOnline of
// onlineUser (a busy hub).
type gateBroker struct {
	*benchBroker
	subChannel, onlineUser    string
	subGate, onlineGate       chan struct{}
	subEntered, onlineEntered chan struct{}
	subOnce, onlineOnce       sync.Once
}

func (b *gateBroker) Subscribe(channel string, target port.Ref) {
	if channel == b.subChannel {
		b.subOnce.Do(func() { close(b.subEntered); <-b.subGate })
	}
	b.benchBroker.Subscribe(channel, target)
}

func (b *gateBroker) UserOnline(user string) {
	if user == b.onlineUser {
		b.onlineOnce.Do(func() { close(b.onlineEntered); <-b.onlineGate })
	}
}

// roomMembersNamed lists the members of the room named name, none when
// the hub names no such room.
func roomMembersNamed(n *Node, name string) []string {
	res, err := n.root.RequestFuture(n.hub, &DirectoryQuery{}, time.Second).Result()
	if err != nil {
		return nil
	}
	id, ok := res.(*Directory).Rooms[name]
	if !ok {
		return nil
	}
	res, err = n.root.RequestFuture(n.system.NewLocalPID(id), &RoomQuery{}, time.Second).Result()
	if err != nil {
		return nil
	}
	return res.(*RoomMembers).Members
}
