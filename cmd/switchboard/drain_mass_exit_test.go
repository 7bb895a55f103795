package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestDrainDuringMassExit: connections in 20,000 rooms of their own leave
// node a at once; while a releases their channels, a client of a joins a
// room and hears what a member on node b sends there. Then connections in
// 5,000 more rooms leave, the client sends room messages to b, and a is
// SIGTERMed while it releases. The drain ends within --drain-timeout
// with nothing reported incomplete, every message a acknowledged reaches
// b in order, and none it refused does.
func TestDrainDuringMassExit(t *testing.T) {
	bin := buildNode(t)
	rs := redistest.Start(t)
	const firstConns, secondConns, perConn, sent = 20, 5, 1000, 50
	const drainTimeout = 5 * time.Second
	prefix := fmt.Sprintf("mx%d", time.Now().UnixNano()%1e6)
	common := []string{"--redis", rs.URL(), "--channel-prefix", prefix, "--rate-limit", "-1"}
	a := startProc(t, bin, append(common, "--node-id", "a", "--drain-timeout", drainTimeout.String(), "--max-rooms", strconv.Itoa(perConn))...)
	b := startProc(t, bin, append(common, "--node-id", "b")...)
	waitUntil(t, "both nodes ready", 10*time.Second, func() bool { return readyStatus(a.base) == 200 && readyStatus(b.base) == 200 })

	y := dialWelcome(t, b.ws("yvonne"))
	x := dialWelcome(t, a.ws("xavier"))
	joinRoom(t, y, "lobby")
	joinRoom(t, x, "lobby")
	rs.WaitNumSub(prefix+":room:lobby", 2, 5*time.Second)
	roomChannels := func() int {
		chs, err := rs.Client().PubSubChannels(context.Background(), prefix+":room:mx-*").Result()
		if err != nil {
			t.Fatalf("PUBSUB CHANNELS: %v", err)
		}
		return len(chs)
	}

	// Two groups of members: the first leaves while xavier joins a room,
	// the second right before SIGTERM.
	var acks atomic.Int64
	dialGroup := func(group string, conns int) []*wsclient.Client {
		members := make([]*wsclient.Client, conns)
		for i := range members {
			c, err := wsclient.Dial(a.ws(fmt.Sprint(group, i)), wsclient.Options{OnEvent: func(e *wsclient.Event) {
				if e.Event == "ack" {
					acks.Add(1)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Abort)
			members[i] = c
			for j := range perConn {
				if err := c.SendJSON(map[string]any{"type": "join_room", "room": fmt.Sprintf("mx-%s%d-%d", group, i, j), "id": j}); err != nil {
					t.Fatal(err)
				}
			}
		}
		return members
	}
	leave := func(members []*wsclient.Client) {
		var wg sync.WaitGroup
		for _, c := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.Abort()
			}()
		}
		wg.Wait()
	}
	first, second := dialGroup("f", firstConns), dialGroup("s", secondConns)
	held := (firstConns + secondConns) * perConn
	waitUntil(t, "every member's joins acknowledged", 60*time.Second, func() bool { return acks.Load() == int64(held) })
	if n := roomChannels(); n != held {
		t.Fatalf("Redis holds %d of the members' room channels, want %d", n, held)
	}

	// A join during the first group's release is acknowledged and hears b.
	leave(first)
	waitUntil(t, "the release under way", 10*time.Second, func() bool { return roomChannels() < held-firstConns*perConn/20 })
	joinRoom(t, x, "news")
	joinRoom(t, y, "news")
	if err := y.SendJSON(map[string]any{"type": "room_message", "room": "news", "content": "hello"}); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, x, "b's message in the room joined during the release", func(e *wsclient.Event) bool {
		return e.Event == "chat" && e.Room == "news" && e.Content == "hello"
	})

	// Traffic and SIGTERM while a releases the second group's channels.
	leave(second)
	for i := range sent {
		id := fmt.Sprint("m", i)
		if err := x.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": id, "id": id}); err != nil {
			t.Fatal(err)
		}
	}
	left := roomChannels()
	signalled := time.Now()
	a.signal(syscall.SIGTERM)
	if left == 0 {
		t.Fatalf("a had released every channel before SIGTERM: the test proves nothing")
	}

	// What a answered before it closed xavier with 1001.
	acked, refused := map[string]bool{}, map[string]bool{}
	for {
		e, err := x.Next(drainTimeout + 2*time.Second)
		if err != nil {
			break // closed
		}
		switch {
		case e.Event == "ack" && strings.HasPrefix(string(e.ID), `"m`):
			acked[strings.Trim(string(e.ID), `"`)] = true
		case e.Event == "error":
			refused[strings.Trim(string(e.ID), `"`)] = true
		}
	}
	if code, _ := x.CloseCode(); code != 1001 {
		t.Errorf("xavier: close %d, want 1001", code)
	}
	code, err := a.waitExit(drainTimeout + 2*time.Second)
	took := time.Since(signalled)
	if err != nil || code != 0 {
		t.Fatalf("a's exit: code %d, %v\n%s", code, err, a.logs)
	}
	if took > drainTimeout+time.Second {
		t.Errorf("a exited %v after SIGTERM, --drain-timeout is %v", took, drainTimeout)
	}
	if a.logs.Contains("drain incomplete") {
		t.Errorf("a reported an incomplete drain:\n%s", a.logs)
	}

	// Every acknowledged message reached b, in order, and none refused did
	// (one that got no answer before the close may have gone either way).
	var got []string
	delivered := 0
	deadline := time.Now().Add(10 * time.Second)
	for delivered < len(acked) && time.Now().Before(deadline) {
		e, err := y.WaitFor(time.Until(deadline), func(e *wsclient.Event) bool { return e.Event == "chat" && e.Room == "lobby" })
		if err != nil {
			break
		}
		got = append(got, e.Content)
		if acked[e.Content] {
			delivered++
		}
	}
	prev := -1
	for _, c := range got {
		i, _ := strconv.Atoi(strings.TrimPrefix(c, "m"))
		if refused[c] || i <= prev {
			t.Fatalf("yvonne got %v; a acknowledged %d of %d and refused %v", got, len(acked), sent, refused)
		}
		prev = i
	}
	if delivered != len(acked) {
		t.Fatalf("yvonne got %d of the %d messages a acknowledged before its drain: %v", delivered, len(acked), got)
	}
	t.Logf("SIGTERM with %d of %d channels still held: exit %v later; %d of %d messages acknowledged and delivered, %d refused",
		left, held, took.Round(time.Millisecond), len(acked), sent, len(refused))
}
