package transport_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// A full node answers 503 before the upgrade; concurrent handshakes cannot
// overshoot the limit; a freed slot is usable again.
func TestMaxConnections(t *testing.T) {
	const max = 5
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.MaxConnections = max }))

	// 16 handshakes at once: exactly max win.
	var wg sync.WaitGroup
	var won, full atomic.Int64
	clients := make(chan *wsclient.Client, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wsclient.Dial(n.wsURL(fmt.Sprintf("/ws?client_id=c%d", i)), wsclient.Options{})
			var he *wsclient.HandshakeError
			switch {
			case err == nil:
				won.Add(1)
				clients <- c
			case asHandshake(err, &he) && he.Status == http.StatusServiceUnavailable:
				full.Add(1)
			default:
				t.Errorf("dial: %v", err)
			}
		}()
	}
	wg.Wait()
	close(clients)
	if won.Load() != max || full.Load() != 16-max {
		t.Fatalf("%d upgraded and %d refused with 503; want %d and %d", won.Load(), full.Load(), max, 16-max)
	}
	if st := handshakeStatus(t, n, "/ws?client_id=late", nil); st != http.StatusServiceUnavailable {
		t.Fatalf("full node: %d, want 503", st)
	}
	first := <-clients
	for c := range clients {
		defer c.Close()
	}
	_ = first.Close()
	waitFor(t, "a freed slot", 5*time.Second, func() bool { return n.srv.OpenConnections() == max-1 })
	if _, _, err := dialWS(t, n.wsURL("/ws?client_id=again"), nil); err != nil {
		t.Fatalf("after a close the node must accept again: %v", err)
	}
	if got := metricValue(t, n, `switchboard_handshakes_refused_total{reason="full"}`); got != 16-max+1 {
		t.Fatalf("refused{full} = %v, want %d", got, 16-max+1)
	}
}

// Per-address limit: 429 for the third connection from one address, while
// another address still gets in.
func TestMaxConnectionsPerIP(t *testing.T) {
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.MaxConnectionsPerIP = 2 }))
	from := func(ip, id string) error {
		c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{LocalAddr: ip})
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
		}
		return err
	}
	for i := range 2 {
		if err := from("127.0.0.1", fmt.Sprint("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	var he *wsclient.HandshakeError
	if err := from("127.0.0.1", "a3"); !asHandshake(err, &he) || he.Status != http.StatusTooManyRequests {
		t.Fatalf("third connection from one address: %v, want 429", err)
	}
	if err := from("127.0.0.2", "b0"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}

// Slowloris: a client that sends half a request head, or nothing, or drips
// a body, is cut; an upgraded socket is not touched by those deadlines.
func TestSlowClientsAreCut(t *testing.T) {
	n := startNode(t, nil, withTransport(func(c *transport.Config) {
		c.ReadHeaderTimeout = 300 * time.Millisecond
		c.HandshakeTimeout = 800 * time.Millisecond
	}))
	// Connected before the slow clients: it must outlive every deadline below.
	ws := n.dial("patient")
	addr := strings.TrimPrefix(n.url, "http://")
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}

	silent := dial()
	half := dial()
	if _, err := io.WriteString(half, "GET /ws?client_id=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); err != nil {
		t.Fatal(err)
	}
	drip := dial()
	if _, err := io.WriteString(drip, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	dripDone := make(chan struct{})
	go func() {
		defer close(dripDone)
		for range 100 { // bounded: at most 10 s of dripping
			if _, err := drip.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	expectEOF(t, silent, 5*time.Second, "a connection that sends nothing")
	expectEOF(t, half, 5*time.Second, "half a request head")
	expectEOF(t, drip, 5*time.Second, "a dripped body")
	<-dripDone

	waitFor(t, "no head pending", 5*time.Second, func() bool {
		return metricValue(t, n, "switchboard_http_heads_pending") == 0
	})
	if got := metricValue(t, n, "switchboard_http_heads_abandoned_total"); got < 2 {
		t.Fatalf("heads abandoned: %v, want at least 2", got)
	}
	// The drip was cut after HandshakeTimeout, well after "patient" upgraded.
	send(t, ws, map[string]any{"type": "ping"})
	expect(t, ws, "pong after the request deadlines passed", isEvent("pong"))
	// A request head bigger than the limit is refused outright.
	big := http.Header{"X-Filler": {strings.Repeat("a", 32<<10)}}
	if st := handshakeStatus(t, n, "/ws?client_id=big", big); st != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 KiB header: %d, want 431", st)
	}
}

// A flooding client gets rate_limited errors, then 1008; clients that keep
// coming back to flood change nothing for the others: every message of a
// well-behaved sender reaches a listener, in order, and of the flooders'
// messages exactly those acknowledged are delivered.
//
// The accounted flooders go lock-step (each message waits for its answer):
// that still sends far beyond the limit, and the node never closes a
// socket with unread bytes in it, which TCP would turn into a reset that
// loses the acks and the close frame. A second kind, the blaster, pipelines
// bursts without reading; it is not accounted, only bounded.
func TestFloodDegradesOnlyTheFlooder(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) {
		c.RatePerSecond = 20
		c.RateBurst = 10
		c.RateStrikes = 10
	}))
	listener := n.dial("listener")
	sender := n.dial("sender")
	for _, c := range []*wsclient.Client{listener, sender} {
		send(t, c, map[string]any{"type": "join_room", "room": "r", "id": 0})
		expect(t, c, "join", isAck("0"))
	}

	var floods, acked, limited, blasts atomic.Int64
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	for f := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 50 && !stopped(); round++ {
				acks, rl, err := floodOnce(n, fmt.Sprintf("flooder%d", f))
				if err != nil {
					t.Error(err)
					return
				}
				floods.Add(1)
				acked.Add(int64(acks))
				limited.Add(int64(rl))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for round := 0; round < 50 && !stopped(); round++ {
			blast(t, n)
			blasts.Add(1)
		}
	}()

	// The paced sender stays under its own limit: 24 messages at ~16 per second.
	const paced = 24
	tick := time.NewTicker(60 * time.Millisecond)
	for i := range paced {
		<-tick.C
		send(t, sender, map[string]any{"type": "room_message", "room": "r", "content": fmt.Sprint(i)})
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	send(t, sender, map[string]any{"type": "room_message", "room": "r", "content": "end"})

	fromSender, fromFlooders, fromBlaster := 0, 0, 0
	for {
		ev, err := listener.WaitFor(10*time.Second, isEvent("chat"))
		if err != nil {
			t.Fatalf("listener: %v after %d of the sender's messages", err, fromSender)
		}
		switch {
		case ev.From == "blaster":
			fromBlaster++
			continue
		case ev.From != "sender":
			fromFlooders++
			continue
		}
		if ev.Content == "end" {
			break
		}
		if ev.Content != fmt.Sprint(fromSender) {
			t.Fatalf("sender's message %q arrived as number %d", ev.Content, fromSender)
		}
		fromSender++
	}
	if fromSender != paced {
		t.Fatalf("listener got %d of the sender's %d messages", fromSender, paced)
	}
	if int64(fromFlooders) != acked.Load() {
		t.Fatalf("listener got %d flooder messages, the node acknowledged %d", fromFlooders, acked.Load())
	}
	if floods.Load() == 0 || limited.Load() == 0 || blasts.Load() == 0 {
		t.Fatalf("no flood happened (%d rounds, %d rate_limited, %d blasts)", floods.Load(), limited.Load(), blasts.Load())
	}
	// Each socket's end is counted by its read loop, which may finish a
	// little after the client saw the close frame.
	waitFor(t, fmt.Sprintf("closes{1008} to reach the %d flood rounds", floods.Load()), 5*time.Second, func() bool {
		return metricValue(t, n, `switchboard_closes_total{code="1008"}`) >= float64(floods.Load())
	})
	t.Logf("%d lock-step flood rounds: %d messages accepted, %d rate_limited; %d blaster rounds, %d of its messages delivered; the paced sender lost none",
		floods.Load(), acked.Load(), limited.Load(), blasts.Load(), fromBlaster)
}

// floodOnce connects, joins "r" and sends room messages back to back, each
// after the answer to the previous one, until the node closes it. It returns
// how many were acknowledged and refused; the close must be 1008.
func floodOnce(n *testNode, id string) (acks, limited int, err error) {
	c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.SendJSON(map[string]any{"type": "join_room", "room": "r", "id": "j"}); err != nil {
		return 0, 0, err
	}
	if _, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == `"j"` }); err != nil {
		return 0, 0, fmt.Errorf("%s join: %w", id, err)
	}
	for i := 0; i < 2000; i++ {
		if c.SendText(fmt.Sprintf(`{"type":"room_message","room":"r","content":"flood","id":%d}`, i)) != nil {
			break
		}
		want := fmt.Sprint(i)
		ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool {
			return (e.Event == "ack" || e.Event == "error") && string(e.ID) == want
		})
		if err != nil {
			break // closed
		}
		switch {
		case ev.Event == "ack":
			acks++
		case ev.Code == "rate_limited":
			limited++
		default:
			return 0, 0, fmt.Errorf("%s: unexpected %+v", id, ev)
		}
	}
	code, err := c.WaitClosed(5 * time.Second)
	if err != nil {
		return 0, 0, fmt.Errorf("%s was not closed after flooding", id)
	}
	if code != 1008 {
		return 0, 0, fmt.Errorf("%s closed with %d, want 1008", id, code)
	}
	if limited == 0 {
		return 0, 0, fmt.Errorf("%s was closed without a rate_limited error first", id)
	}
	return acks, limited, nil
}

// blast pipelines bursts of room messages without reading, until the node
// cuts the connection (at most 20 bursts).
func blast(t testing.TB, n *testNode) {
	rc, resp, err := tryUpgrade(n, "/ws?client_id=blaster", nil)
	if err != nil || rc == nil {
		t.Errorf("blaster refused: %v %v", resp, err)
		return
	}
	defer rc.nc.Close()
	_ = rc.text(`{"type":"join_room","room":"r"}`)
	msg := frame(true, 0x1, []byte(`{"type":"room_message","room":"r","content":"blast"}`))
	burst := make([]byte, 0, len(msg)*100)
	for range 100 {
		burst = append(burst, msg...)
	}
	for range 20 {
		if rc.write(burst) != nil {
			return
		}
	}
	// Not cut yet (the bytes sit in buffers): read until the node closes.
	_, _, _ = rc.waitClose(5 * time.Second)
}

// Rooms per connection, and room names.
func TestRoomLimits(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) { c.MaxRoomsPerSession = 3 }))
	c := n.dial("roomy")
	for i := range 3 {
		send(t, c, map[string]any{"type": "join_room", "room": fmt.Sprint("r", i), "id": i})
		expect(t, c, "join", isAck(fmt.Sprint(i)))
	}
	send(t, c, map[string]any{"type": "join_room", "room": "r3", "id": 3})
	if ev := expect(t, c, "refusal", isEvent("error")); ev.Code != "too_many_rooms" || string(ev.ID) != "3" {
		t.Fatalf("fourth room: %+v", ev)
	}
	send(t, c, map[string]any{"type": "join_room", "room": "r0", "id": 4})
	expect(t, c, "re-joining a room it is in is no new room", isAck("4"))
	send(t, c, map[string]any{"type": "leave_room", "room": "r1", "id": 5})
	expect(t, c, "leave", isAck("5"))
	send(t, c, map[string]any{"type": "join_room", "room": "r3", "id": 6})
	expect(t, c, "join after a leave", isAck("6"))

	for i, room := range []any{"", strings.Repeat("a", 129), "a b", "a/b", "é", "a\x00", "room#1", "a*", 42, nil, []string{"x"}} {
		send(t, c, map[string]any{"type": "join_room", "room": room, "id": 100 + i})
		ev := expect(t, c, "refusal", isEvent("error"))
		want := "invalid_room"
		if _, isString := room.(string); !isString {
			want = "invalid_message"
		}
		if ev.Code != want {
			t.Fatalf("room %q: %+v, want %s", room, ev, want)
		}
	}
	waitFor(t, "three rooms live", 5*time.Second, func() bool { return n.node.Metrics().Rooms.Load() == 3 })
	if got := metricValue(t, n, `switchboard_client_errors_total{code="too_many_rooms"}`); got != 1 {
		t.Fatalf("too_many_rooms counted %v, want 1", got)
	}
}

// A frame over the size limit closes only that connection with 1009, whole
// or in fragments; binary frames close with 1008 unless allowed.
func TestFrameLimits(t *testing.T) {
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.MaxMessageBytes = 1024 }))
	bystander := n.dial("bystander")

	big, _ := rawUpgrade(t, n, "/ws?client_id=big", nil)
	if _, err := big.event(5 * time.Second); err != nil { // welcome
		t.Fatal(err)
	}
	_ = big.text(`{"type":"chat","content":"` + strings.Repeat("x", 1100) + `"}`)
	if code, _, err := big.waitClose(5 * time.Second); err != nil || code != 1009 {
		t.Fatalf("oversized frame: close %d %v, want 1009", code, err)
	}

	frag, _ := rawUpgrade(t, n, "/ws?client_id=frag", nil)
	if _, err := frag.event(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = frag.write(frame(false, 0x1, []byte(`{"type":"chat","content":"`+strings.Repeat("x", 600))))
	_ = frag.write(frame(true, 0x0, []byte(strings.Repeat("x", 600)+`"}`)))
	if code, _, err := frag.waitClose(5 * time.Second); err != nil || code != 1009 {
		t.Fatalf("oversized fragmented message: close %d %v, want 1009", code, err)
	}

	bin, _ := rawUpgrade(t, n, "/ws?client_id=bin", nil)
	if _, err := bin.event(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = bin.write(frame(true, 0x2, []byte(`{"type":"ping"}`)))
	if code, _, err := bin.waitClose(5 * time.Second); err != nil || code != 1008 {
		t.Fatalf("binary frame: close %d %v, want 1008", code, err)
	}

	send(t, bystander, map[string]any{"type": "ping"})
	expect(t, bystander, "bystander pong", isEvent("pong"))
	if code, _ := bystander.CloseCode(); code != 0 {
		t.Fatalf("bystander closed with %d", code)
	}
	waitFor(t, "two 1009 closes counted", 5*time.Second, func() bool {
		return metricValue(t, n, `switchboard_closes_total{code="1009"}`) == 2
	})

	// With binary frames allowed, a binary frame is a command like a text one.
	nb := startNode(t, nil, withTransport(func(c *transport.Config) { c.AllowBinary = true }))
	ok, _ := rawUpgrade(t, nb, "/ws?client_id=bin", nil)
	if _, err := ok.event(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	_ = ok.write(frame(true, 0x2, []byte(`{"type":"ping"}`)))
	if ev, err := ok.event(5 * time.Second); err != nil || ev.Event != "pong" {
		t.Fatalf("allowed binary frame: %+v %v", ev, err)
	}
	_ = ok.write(frame(true, 0x2, []byte{0xff, 0xfe, '{'}))
	if ev, err := ok.event(5 * time.Second); err != nil || ev.Code != "invalid_json" {
		t.Fatalf("binary garbage: %+v %v, want invalid_json", ev, err)
	}
}

// WebSocket pings cost a pong each: a client that pings faster than its
// message rate is closed 1008, even if it never reads.
func TestPingFlood(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) {
		c.RatePerSecond = 50
		c.RateBurst = 20
	}))
	rc, _ := rawUpgrade(t, n, "/ws?client_id=pinger", nil)
	ping := frame(true, 0x9, []byte("0123456789"))
	// Write without reading: 2,000 pings in one burst.
	burst := make([]byte, 0, len(ping)*2000)
	for range 2000 {
		burst = append(burst, ping...)
	}
	_ = rc.write(burst) // the node may close mid-burst
	code, _, err := rc.waitClose(5 * time.Second)
	if err != nil || code != 1008 {
		t.Fatalf("ping flood: close %d %v, want 1008", code, err)
	}
	// A client pinging at a sane pace is not affected.
	calm, _ := rawUpgrade(t, n, "/ws?client_id=calm", nil)
	for i := range 10 {
		_ = calm.write(frame(true, 0x9, []byte{byte(i)}))
	}
	pongs := 0
	for pongs < 10 {
		op, _, err := calm.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("calm pinger after %d pongs: %v", pongs, err)
		}
		if op == 0xA {
			pongs++
		}
	}
}

// Heartbeat replies count against the message rate like any command.
func TestPongFloodIsRateLimited(t *testing.T) {
	n := startNode(t, nil, withActors(func(c *actors.Config) {
		c.RatePerSecond = 20
		c.RateBurst = 5
		c.RateStrikes = 5
	}))
	c := n.dial("ponger")
	limited := 0
	for i := 0; i < 1000; i++ {
		if c.SendText(fmt.Sprintf(`{"type":"pong","id":%d}`, i)) != nil {
			break
		}
		want := fmt.Sprint(i)
		ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return string(e.ID) == want })
		if err != nil {
			break
		}
		if ev.Code == "rate_limited" {
			limited++
		}
	}
	if code, err := c.WaitClosed(5 * time.Second); err != nil || code != 1008 {
		t.Fatalf("pong flood: close %d %v, want 1008", code, err)
	}
	if limited == 0 {
		t.Fatal("no rate_limited error before the close")
	}
}

// With the rate limit off, a client that pings and never reads still cannot
// grow the node's memory: the pongs queued for it are bounded by its
// outbound budget, and past it the connection is cut.
func TestUnreadPongsAreBounded(t *testing.T) {
	n := startNode(t, nil,
		withActors(func(c *actors.Config) { c.RatePerSecond = -1 }),
		withTransport(func(c *transport.Config) { c.MaxPendingBytes = 64 << 10 }))
	// A tiny receive window, so that the kernel buffers little of what the
	// node sends.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp", strings.TrimPrefix(n.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc, resp, err := upgradeOn(nc, "/ws?client_id=deaf", nil)
	if err != nil || rc == nil {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	ping := frame(true, 0x9, make([]byte, 125))
	burst := make([]byte, 0, len(ping)*1000)
	for range 1000 {
		burst = append(burst, ping...)
	}
	// Up to 16 MiB of pings, never reading: far beyond the kernel's buffers
	// (a few MiB on loopback) plus the 64 KiB budget.
	cut := false
	for i := 0; i < 128 && !cut; i++ {
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(burst); err != nil {
			cut = true
		}
	}
	// Now read: what is buffered drains, then the connection must end.
	expectEOF(t, nc, 10*time.Second, "a client that pings and never reads")
	waitFor(t, "the deaf client's session gone", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 0 })
}

func asHandshake(err error, he **wsclient.HandshakeError) bool {
	if err == nil {
		return false
	}
	h, ok := err.(*wsclient.HandshakeError)
	if ok {
		*he = h
	}
	return ok
}

// metricValue reads one sample from the node's /metrics ("name" or
// `name{label="v"}`); a sample that is absent reads as 0.
func metricValue(t testing.TB, n *testNode, sample string) float64 {
	t.Helper()
	// No keep-alive: a pooled connection would count as a leaked goroutine.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %q", sample, line)
			}
			return v
		}
	}
	return 0
}
