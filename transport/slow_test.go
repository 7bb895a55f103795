package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// A client that stops reading fills only its own outbound budget and is
// closed with 1013; everyone else in the same room receives everything, in
// order. The slow client is a raw TCP peer with a small receive buffer that
// never reads after joining; the room is flooded through the node's publish
// API, the cheapest way to push megabytes through it.
func TestSlowConsumerIsClosedAlone(t *testing.T) {
	const budget = 64 << 10
	n := startNode(t, nil,
		withActors(func(c *actors.Config) { c.RatePerSecond = -1 }),
		withTransport(func(c *transport.Config) { c.MaxPendingBytes = budget }))
	// The readers read raw frames: decoding megabytes of JSON would only
	// slow the test down.
	member, receiver := wireSession(t, n, "member"), wireSession(t, n, "receiver")

	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(shrinkReceiveBuffer)
	}}
	nc, err := d.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	slow := handshakeOn(t, nc, "/ws?client_id=slow", nil)
	slow.event(t) // welcome
	for _, p := range []*wirePeer{slow, member, receiver} {
		p.write(t, maskedFrame(true, 0x1, []byte(`{"type":"join_room","room":"flood","id":"j"}`)))
		p.ack(t, `"j"`)
	}

	// Flood the room until the slow client is cut; bounded in count. Each
	// message waits until both readers have it: they are never the slow ones.
	content := strings.Repeat("z", 48<<10)
	sent, slowLeft := 0, false
	publish := func() {
		payload := fmt.Sprintf(`{"event":"chat","from":"api","room":"flood","content":"%d%s"}`, sent, content)
		if _, err := n.node.PublishRoom(context.Background(), "flood", []byte(payload)); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*wirePeer{member, receiver} {
			for {
				f, err := p.next(t, 5*time.Second)
				if err != nil {
					t.Fatalf("reader waiting for message %d: %v", sent, err)
				}
				if f.op != 0x1 {
					continue
				}
				if string(f.payload) == `{"event":"user_left","user_id":"slow","room":"flood"}` {
					slowLeft = true
				}
				if !strings.HasPrefix(string(f.payload), `{"event":"chat"`) {
					continue // presence
				}
				// The room's stream numbers it: {...,"offset":N,"epoch":E}.
				got := string(f.payload)
				if i := strings.LastIndex(got, `,"offset":`); i > 0 {
					got = got[:i] + "}"
				}
				if len(got) != len(payload) || got[:len(payload)-len(content)-2] != payload[:len(payload)-len(content)-2] {
					t.Fatalf("reader got %.80q as message %d: lost or out of order", f.payload, sent)
				}
				break
			}
		}
		sent++
	}
	start := time.Now()
	for n.node.Metrics().SlowClosed.Load() == 0 {
		if sent > 1000 {
			t.Fatal("the slow client was never cut")
		}
		publish()
	}
	// The slow client reads again, at once: what was in flight, then the
	// close frame. A client that still does not read is disconnected after a
	// short grace without it, so a late reader may see only the end of the
	// stream; the node's own count says how it closed.
	_ = nc.(*net.TCPConn).SetReadBuffer(1 << 20)
	if code, framed := slow.closeOrEOF(t); framed && code != uint16(wire.CloseTryAgainLater) {
		t.Fatalf("slow consumer closed with %d, want 1013", code)
	} else if !framed {
		t.Log("the slow client resumed reading after the close grace: connection cut without the close frame")
	}
	waitFor(t, "the slow session gone, and only it", 5*time.Second, func() bool {
		users := map[string]bool{}
		for _, u := range hubDirectory(t, n).Sessions {
			users[u] = true
		}
		return len(users) == 2 && users["member"] && users["receiver"]
	})
	// The socket's end is counted by its read loop, which may finish a
	// little after the session has gone.
	closes := func() float64 { return metricValue(t, n, `switchboard_closes_total{code="1013"}`) }
	waitFor(t, "the 1013 close counted", 5*time.Second, func() bool { return closes() >= 1 })
	if got := closes(); got != 1 {
		t.Fatalf("1013 closes counted: %v, want 1", got)
	}
	for range 5 {
		publish()
	}
	if !slowLeft {
		t.Fatal("the room did not tell its members that the slow client left")
	}
	for _, p := range []*wirePeer{member, receiver} {
		p.write(t, maskedFrame(true, 0x1, []byte(`{"type":"ping","id":"after"}`)))
		p.ack(t, `"after"`)
	}
	t.Logf("cut after %d messages of %d KiB, %v", sent-5, len(content)>>10, time.Since(start))
}

// closeOrEOF reads until the server's close frame (framed: its code) or the
// end of the connection.
func (p *wirePeer) closeOrEOF(t testing.TB) (code uint16, framed bool) {
	t.Helper()
	for {
		f, err := p.next(t, 10*time.Second)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the node kept a slow consumer's connection open")
			}
			return 0, false
		}
		if f.op == 0x8 {
			return f.closeCode(), true
		}
	}
}

// gatedConn is the server side of an accepted connection, instrumented at
// the one place every outbound batch passes: the writer arms a write
// deadline before each writev. It embeds *net.TCPConn, so net.Buffers still
// finds the writev path (a plain Write would be counted in writes).
type gatedConn struct {
	*net.TCPConn
	batches atomic.Int64 // write deadlines armed: one per batch
	armed   atomic.Bool  // a batch's deadline is set and no Write has used it
	writes  atomic.Int64 // Write calls outside a batch: frames that bypassed the writer

	mu   sync.Mutex
	gate chan struct{} // when set, the next batch waits for it to close
	held chan struct{} // closed once a batch waits at the gate
}

// SyscallConn hides the socket's RawConn: a flush's inline write
// (writeNow) would otherwise go around the writer, and the gate, whenever
// the socket takes everything at once.
func (c *gatedConn) SyscallConn() (syscall.RawConn, error) {
	return nil, errors.New("gatedConn: no raw access")
}

// Write is the writer's call for a batch of one frame (larger batches use
// writev, which goes straight to the TCPConn); any other Write bypassed it.
func (c *gatedConn) Write(p []byte) (int, error) {
	if !c.armed.Swap(false) {
		c.writes.Add(1)
	}
	return c.TCPConn.Write(p)
}

func (c *gatedConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() {
		c.batches.Add(1)
		c.armed.Store(true)
		c.mu.Lock()
		gate := c.gate
		if gate != nil {
			c.gate = nil
			close(c.held)
		}
		c.mu.Unlock()
		if gate != nil {
			<-gate
		}
	}
	return c.TCPConn.SetWriteDeadline(t)
}

// holdNextBatch makes the next outbound batch wait until release.
func (c *gatedConn) holdNextBatch() (held <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gate := make(chan struct{})
	c.gate, c.held = gate, make(chan struct{})
	return c.held, func() { close(gate) }
}

type gatedListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*gatedConn
}

func (l *gatedListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &gatedConn{TCPConn: nc.(*net.TCPConn)}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	return c, nil
}

func (l *gatedListener) conn(i int) *gatedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[i]
}

// Write coalescing: frames that reach a connection while its writer is busy
// leave together, in one writev, instead of one write(2) each. The writer's
// first batch is held at the gate while a burst is queued behind it; once
// released, the rest of the burst goes out as a single second batch. No
// bytes bypass the writer, the 101 response included.
func TestWritesAreCoalesced(t *testing.T) {
	node, err := actors.NewNode(actors.Config{Broker: cluster.NewInProc(), PingInterval: time.Hour, RatePerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.New(node, transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl := &gatedListener{Listener: ln}
	hs := srv.NewHTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(gl) }()
	n := &testNode{t: t, node: node, srv: srv, hs: hs, url: "http://" + ln.Addr().String()}
	t.Cleanup(n.stop)

	receiver := n.dial("receiver") // accepted first
	sender := n.dial("sender")
	rc := gl.conn(0)
	waitFor(t, "receiver's welcome batch out", 5*time.Second, func() bool { return rc.batches.Load() >= 1 })
	before := rc.batches.Load()
	queuedBefore := node.Metrics().MessagesOut.Load()

	held, release := rc.holdNextBatch()
	const burst = 200
	for i := range burst {
		send(t, sender, map[string]any{"type": "chat", "content": fmt.Sprint("c", i)})
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch reached the gate")
	}
	// Every chat is queued on the receiver's connection (the sender gets no
	// copy of its own chat): the writer holds the first, the rest wait.
	waitFor(t, "burst queued", 5*time.Second, func() bool {
		return node.Metrics().MessagesOut.Load()-queuedBefore >= burst
	})
	release()
	for i := range burst {
		ev := expect(t, receiver, "chat", isEvent("chat"))
		if ev.Content != fmt.Sprint("c", i) {
			t.Fatalf("chat %d is %q: order lost", i, ev.Content)
		}
	}
	// Two batches: the held one, then everything queued behind it. One, when
	// the session had the whole burst in its mailbox before it flushed.
	if got := rc.batches.Load() - before; got < 1 || got > 2 {
		t.Fatalf("%d frames left in %d batches; want at most 2", burst, got)
	}
	if w := rc.writes.Load(); w != 0 {
		t.Fatalf("%d writes outside a batch: frames bypassed the writer", w)
	}

	// Without a gate, how much coalescing happens depends on scheduling:
	// report it, assert nothing about it.
	before = rc.batches.Load()
	for i := range burst {
		send(t, sender, map[string]any{"type": "chat", "content": fmt.Sprint("d", i)})
	}
	for i := range burst {
		expect(t, receiver, "chat", func(e *wsclient.Event) bool { return e.Content == fmt.Sprint("d", i) })
	}
	t.Logf("ungated: %d frames in %d writev batches", burst, rc.batches.Load()-before)
}
