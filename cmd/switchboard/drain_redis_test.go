package main

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// testDrainFlushesPublishesAndPresence runs two real nodes on a real Redis.
// A client on node a sends room messages while Redis is paused, so each is
// acknowledged from a's outbox without having reached Redis; a is then
// SIGTERMed at once. The drain must flush the outbox before the process
// exits (node b's member gets every acknowledged message), remove a's users
// from the presence directory (b's member hears user_disconnected, the keys
// are gone), close a's client with 1001, and exit 0 within --drain-timeout;
// the client then goes on at b.
func testDrainFlushesPublishesAndPresence(t *testing.T, bin string) {
	rs := redistest.Start(t)
	prefix := fmt.Sprintf("drain%d", time.Now().UnixNano()%1e6)
	const drainTimeout = 6 * time.Second
	common := []string{"--redis", rs.URL(), "--channel-prefix", prefix}
	a := startProc(t, bin, append(common, "--node-id", "a", "--drain-timeout", drainTimeout.String())...)
	b := startProc(t, bin, append(common, "--node-id", "b")...)
	waitUntil(t, "both nodes ready", 10*time.Second, func() bool { return readyStatus(a.base) == 200 && readyStatus(b.base) == 200 })

	x := dialWelcome(t, a.ws("xavier"))
	y := dialWelcome(t, b.ws("yvonne"))
	joinRoom(t, y, "lobby")
	joinRoom(t, x, "lobby")
	rs.WaitNumSub(prefix+":room:lobby", 2, 5*time.Second)
	expectEvent(t, y, "xavier's presence", func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == "xavier" })
	ctx := context.Background()
	if n, err := rs.Client().SCard(ctx, prefix+":presence:node:a").Result(); err != nil || n != 1 {
		t.Fatalf("a's users in the presence directory: %d, %v", n, err)
	}

	// Redis stops answering; a acknowledges from its outbox.
	const pause, sent = 2 * time.Second, 20
	rs.Pause(pause)
	paused := time.Now()
	for i := range sent {
		id := fmt.Sprint("m", i)
		if err := x.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": id, "id": id}); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, x, "ack "+id, func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == `"`+id+`"` })
	}
	acked := time.Since(paused)
	signalled := time.Now()
	a.signal(syscall.SIGTERM)

	if code, err := x.WaitClosed(5 * time.Second); err != nil || code != 1001 {
		t.Errorf("xavier: close %d (%v), want 1001", code, err)
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

	// Every acknowledged message reached b, in order, and a's user left.
	// (Room traffic and presence ride on different channels, so their
	// relative order is not given.)
	next, left := 0, false
	if _, err := y.WaitFor(10*time.Second, func(e *wsclient.Event) bool {
		switch {
		case e.Event == "chat" && e.Room == "lobby":
			if e.Content != fmt.Sprint("m", next) {
				t.Fatalf("yvonne got %q as message %d", e.Content, next)
			}
			next++
		case e.Event == "user_disconnected" && e.UserID == "xavier":
			left = true
		}
		return next == sent && left
	}); err != nil {
		t.Fatalf("yvonne got %d of the %d messages a acknowledged before its drain (xavier disconnected: %v): %v", next, sent, left, err)
	}
	for _, key := range []string{prefix + ":presence:node:a", prefix + ":presence:alive:a", prefix + ":presence:user:xavier"} {
		if n, err := rs.Client().Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Errorf("presence key %s left behind by the drained node (%d, %v)", key, n, err)
		}
	}
	if ok, err := rs.Client().SIsMember(ctx, prefix+":presence:nodes", "a").Result(); err != nil || ok {
		t.Errorf("drained node still registered in %s:presence:nodes (%v)", prefix, err)
	}
	t.Logf("drain with Redis paused for %v (acks after %v): exit %v after SIGTERM, %d/%d acknowledged messages delivered at b",
		pause, acked.Round(time.Millisecond), took.Round(time.Millisecond), next, sent)

	// xavier goes on at b.
	x = dialWelcome(t, b.ws("xavier"))
	joinRoom(t, x, "lobby")
	if err := y.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": "welcome back"}); err != nil {
		t.Fatal(err)
	}
	expectEvent(t, x, "room traffic at b", func(e *wsclient.Event) bool { return e.Content == "welcome back" })
}

// testDrainIsBoundedWhenRedisIsGone: with Redis unreachable for longer than
// --drain-timeout, a SIGTERMed node still exits within it and reports the
// drain as incomplete.
func testDrainIsBoundedWhenRedisIsGone(t *testing.T, bin string) {
	rs := redistest.Start(t)
	const drainTimeout = 2 * time.Second
	a := startProc(t, bin, "--redis", rs.URL(), "--node-id", "a", "--drain-timeout", drainTimeout.String(), "--log-level", "debug")
	waitUntil(t, "a ready", 10*time.Second, func() bool { return readyStatus(a.base) == 200 })
	x := dialWelcome(t, a.ws("xavier"))
	joinRoom(t, x, "lobby")

	rs.Pause(10 * time.Second)
	t.Cleanup(func() { _ = rs.Client().Do(context.Background(), "CLIENT", "UNPAUSE").Err() })
	for i := range 5 {
		id := fmt.Sprint("m", i)
		if err := x.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": id, "id": id}); err != nil {
			t.Fatal(err)
		}
		expectEvent(t, x, "ack "+id, func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == `"`+id+`"` })
	}
	signalled := time.Now()
	a.signal(syscall.SIGTERM)
	code, err := a.waitExit(drainTimeout + 3*time.Second)
	took := time.Since(signalled)
	if err != nil {
		t.Fatalf("a still running %v after SIGTERM with --drain-timeout %v\n%s", took, drainTimeout, a.logs)
	}
	if took > drainTimeout+time.Second {
		t.Errorf("a exited %v after SIGTERM, --drain-timeout is %v", took, drainTimeout)
	}
	if code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !a.logs.Contains("drain incomplete") {
		t.Errorf("the node did not report its incomplete drain:\n%s", a.logs)
	}
	t.Logf("drain with Redis gone: exit %v after SIGTERM", took.Round(time.Millisecond))
}
