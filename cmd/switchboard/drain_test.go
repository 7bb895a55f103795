package main

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestDrain runs the real binary, built once, and signals it: the drain is
// what a process does between SIGTERM and its exit.
func TestDrain(t *testing.T) {
	bin := buildNode(t)
	t.Run("sigterm", func(t *testing.T) { testDrainOnSIGTERM(t, bin) })
	t.Run("redis-flush-and-presence", func(t *testing.T) { testDrainFlushesPublishesAndPresence(t, bin) })
	t.Run("redis-gone-bounded", func(t *testing.T) { testDrainIsBoundedWhenRedisIsGone(t, bin) })
}

// testDrainOnSIGTERM: on SIGTERM the node turns unready and refuses new
// sockets before it closes a single client, every client gets 1001 and can
// reconnect to another node, and the process exits cleanly within
// --drain-timeout.
func testDrainOnSIGTERM(t *testing.T, bin string) {
	const drainTimeout = 3 * time.Second
	a := startProc(t, bin, "--drain-timeout", drainTimeout.String(), "--node-id", "a")
	b := startProc(t, bin, "--node-id", "b")

	users := []string{"u0", "u1", "u2", "u3", "u4"}
	clients := make([]*wsclient.Client, len(users))
	for i, u := range users {
		clients[i] = dialWelcome(t, a.ws(u))
		joinRoom(t, clients[i], "lobby")
	}
	if st := readyStatus(a.base); st != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d", st)
	}
	probe := probeReady(a.base)
	waitUntil(t, "the probe's first answer", 5*time.Second, func() bool {
		probe.mu.Lock()
		defer probe.mu.Unlock()
		return len(probe.codes) > 0
	})

	signalled := time.Now()
	a.signal(syscall.SIGTERM)
	firstClose := make(chan struct{})
	go func() {
		select {
		case <-clients[0].Closed():
		case <-time.After(5 * time.Second):
		}
		close(firstClose)
	}()
	<-firstClose
	// A client has its 1001, so the drain has begun: the node must already
	// be unready and refuse new sockets (or be gone altogether).
	if st := readyStatus(a.base); st != http.StatusServiceUnavailable && st != 0 {
		t.Errorf("/readyz after the first 1001: %d, want 503 (or no answer once the listener closed)", st)
	}
	if c, err := wsclient.Dial(a.ws("late"), wsclient.Options{Timeout: time.Second}); err == nil {
		_ = c.Close()
		t.Error("a new WebSocket was accepted after the drain began")
	} else if he := (*wsclient.HandshakeError)(nil); errors.As(err, &he) && he.Status != http.StatusServiceUnavailable {
		t.Errorf("late dial refused with %d, want 503", he.Status)
	}
	for i, c := range clients {
		code, err := c.WaitClosed(5 * time.Second)
		if err != nil || code != 1001 {
			t.Errorf("client %s: close %d (%v), want 1001", users[i], code, err)
		}
	}

	code, err := a.waitExit(drainTimeout + 2*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit: code %d, %v\n%s", code, err, a.logs)
	}
	if took := time.Since(signalled); took > drainTimeout+time.Second {
		t.Errorf("exit took %v, longer than --drain-timeout %v", took, drainTimeout)
	}
	codes := probe.finish()
	seenUnready := false
	for _, c := range codes {
		if c != http.StatusOK {
			seenUnready = true
		} else if seenUnready {
			t.Errorf("/readyz answered 200 after a 503 or a refusal: %v", codes)
			break
		}
	}
	t.Logf("exit %v after SIGTERM; /readyz answers in order (0: no answer): %v", time.Since(signalled).Round(time.Millisecond), compact(codes))
	if a.logs.Contains("drain incomplete") {
		t.Errorf("drain reported incomplete:\n%s", a.logs)
	}

	// Every client goes on at the other node.
	for i, u := range users {
		clients[i] = dialWelcome(t, b.ws(u))
		joinRoom(t, clients[i], "lobby")
	}
	content := fmt.Sprintf("after drain %d", time.Now().UnixNano())
	if err := clients[0].SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": content}); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		expectEvent(t, c, "room message at the other node", func(e *wsclient.Event) bool { return e.Content == content })
	}
}

// compact renders a status sequence as runs: [200x12 503x3 0x40].
func compact(codes []int) []string {
	var out []string
	for i := 0; i < len(codes); {
		j := i
		for j < len(codes) && codes[j] == codes[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%dx%d", codes[i], j-i))
		i = j
	}
	return out
}
