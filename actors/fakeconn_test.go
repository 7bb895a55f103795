package actors_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/internal/wiretest"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster"
)

// fakeConn is the test double at the session's seam: it records the frames
// a session enqueues, counts flushes and remembers how the session closed.
// The session calls it from its actor goroutine; tests read it from theirs,
// so every field is guarded by mu.
type fakeConn struct {
	mu      sync.Mutex
	changed *sync.Cond
	frames  [][]byte
	flushes int
	pending int // bytes enqueued and not yet flushed
	budget  int // when > 0, Enqueue refuses past this many pending bytes
	closeBy string
	code    wire.CloseCode
	reason  string
	hold    chan struct{} // when set, the next Enqueue waits for it to close
	held    chan struct{} // closed once that Enqueue is waiting
}

var _ actors.Conn = (*fakeConn)(nil)

func newFakeConn() *fakeConn {
	c := &fakeConn{}
	c.changed = sync.NewCond(&c.mu)
	return c
}

func (c *fakeConn) Enqueue(frame []byte) bool {
	c.mu.Lock()
	if hold := c.hold; hold != nil {
		c.hold = nil
		close(c.held)
		c.mu.Unlock()
		<-hold
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if c.budget > 0 && c.pending+len(frame) > c.budget {
		return false
	}
	c.frames = append(c.frames, frame)
	c.pending += len(frame)
	c.changed.Broadcast()
	return true
}

func (c *fakeConn) Flush() {
	c.mu.Lock()
	c.flushes++
	c.pending = 0
	c.changed.Broadcast()
	c.mu.Unlock()
}

func (c *fakeConn) Close(code wire.CloseCode, reason string) { c.closed("close", code, reason) }
func (c *fakeConn) Abort(code wire.CloseCode, reason string) { c.closed("abort", code, reason) }

func (c *fakeConn) closed(by string, code wire.CloseCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeBy != "" {
		panic("connection closed twice")
	}
	c.closeBy, c.code, c.reason = by, code, reason
	c.changed.Broadcast()
}

// holdNext makes the next Enqueue wait until release is called; held is
// closed once the session is waiting in it.
func (c *fakeConn) holdNext() (held <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hold := make(chan struct{})
	c.hold, c.held = hold, make(chan struct{})
	return c.held, func() { close(hold) }
}

func (c *fakeConn) flushCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushes
}

// waitUntil waits, up to a deadline, until cond holds on the locked conn.
func (c *fakeConn) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	stop := time.AfterFunc(5*time.Second, func() { c.mu.Lock(); c.changed.Broadcast(); c.mu.Unlock() })
	defer stop.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; frames: %s", what, c.describeLocked())
		}
		c.changed.Wait()
	}
}

func (c *fakeConn) describeLocked() string {
	out := ""
	for _, f := range c.frames {
		fr, _, _ := wiretest.ReadFrame(f)
		out += string(fr.Payload) + " "
	}
	return out + "close=" + c.closeBy
}

// event is a decoded server event.
type event struct {
	Event   string          `json:"event"`
	From    string          `json:"from"`
	Room    string          `json:"room"`
	Content string          `json:"content"`
	UserID  string          `json:"user_id"`
	Code    string          `json:"code"`
	ID      json.RawMessage `json:"id"`
	Client  string          `json:"client_id"`
	Node    string          `json:"node"`
}

// events decodes every text frame enqueued so far.
func (c *fakeConn) events(t *testing.T) []event {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	return decodeFrames(t, c.frames)
}

func decodeFrames(t *testing.T, frames [][]byte) []event {
	t.Helper()
	var out []event
	for _, f := range frames {
		fr, used, bad := wiretest.ReadFrame(f)
		if bad != "" || used != len(f) {
			t.Fatalf("bad frame %q: %s", f, bad)
		}
		if fr.Opcode != wire.OpText {
			continue
		}
		var ev event
		if err := json.Unmarshal(fr.Payload, &ev); err != nil {
			t.Fatalf("bad event %s: %v", fr.Payload, err)
		}
		out = append(out, ev)
	}
	return out
}

// waitEvent waits until an event matching match has been enqueued and
// returns the first one.
func (c *fakeConn) waitEvent(t *testing.T, what string, match func(event) bool) event {
	t.Helper()
	var found event
	c.waitUntil(t, what, func() bool {
		for _, ev := range decodeFrames(t, c.frames) {
			if match(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// count returns how many enqueued events match.
func (c *fakeConn) count(t *testing.T, match func(event) bool) int {
	n := 0
	for _, ev := range c.events(t) {
		if match(ev) {
			n++
		}
	}
	return n
}

func (c *fakeConn) waitClosed(t *testing.T) (string, wire.CloseCode) {
	t.Helper()
	c.waitUntil(t, "close", func() bool { return c.closeBy != "" })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeBy, c.code
}

func is(name string) func(event) bool { return func(e event) bool { return e.Event == name } }

func errorIs(code wire.ErrorCode) func(event) bool {
	return func(e event) bool { return e.Event == "error" && e.Code == string(code) }
}

func ackOf(id string) func(event) bool {
	return func(e event) bool { return e.Event == "ack" && string(e.ID) == id }
}

// newNode starts a node on its own in-process broker, shut down at cleanup.
func newNode(t *testing.T, mutate ...func(*actors.Config)) *actors.Node {
	t.Helper()
	cfg := actors.Config{Broker: cluster.NewInProc(), NodeID: "n1"}
	for _, m := range mutate {
		m(&cfg)
	}
	n, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return n
}

// peer is one connected session and its fake connection.
type peer struct {
	t    *testing.T
	node *actors.Node
	pid  actors.SessionHandle
	conn *fakeConn
	user string
}

func connect(t *testing.T, n *actors.Node, user string, opts ...func(*actors.SessionOptions)) *peer {
	t.Helper()
	o := actors.SessionOptions{User: user}
	for _, f := range opts {
		f(&o)
	}
	c := newFakeConn()
	p := &peer{t: t, node: n, pid: n.Connect(c, o), conn: c, user: user}
	c.waitEvent(t, "welcome", is("welcome"))
	waitFor(t, "session registered", func() bool { _, ok := directory(t, n).Sessions[p.pid.ID()]; return ok })
	return p
}

// send hands the session a client frame, as the transport's read side does.
func (p *peer) send(frame string) { p.node.Deliver(p.pid, wire.DecodeCommand([]byte(frame))) }

func directory(t *testing.T, n *actors.Node) *actors.Directory {
	t.Helper()
	res, err := n.System().Root.RequestFuture(n.Hub(), &actors.DirectoryQuery{}, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("directory: %v", err)
	}
	return res.(*actors.Directory)
}

func roomMembers(t *testing.T, n *actors.Node, roomID string) []string {
	t.Helper()
	res, err := n.System().Root.RequestFuture(n.System().NewLocalPID(roomID), &actors.RoomQuery{}, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("room query: %v", err)
	}
	return res.(*actors.RoomMembers).Members
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
