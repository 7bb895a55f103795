package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// presenceOf asks c for room's presence and returns "users N connections M".
func presenceOf(t *testing.T, c *wsclient.Client, room string) string {
	t.Helper()
	id := fmt.Sprint("p", time.Now().UnixNano())
	_ = c.SendJSON(map[string]any{"type": "presence", "room": room, "id": id})
	ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return string(e.ID) == `"`+id+`"` })
	if err != nil {
		t.Fatalf("presence: %v", err)
	}
	var p struct{ Users, Connections int }
	_ = json.Unmarshal(ev.Raw, &p)
	return fmt.Sprintf("users %d connections %d", p.Users, p.Connections)
}

// A member of a node that dies without a word (SIGKILL) is gone from the
// room's presence within --presence-ttl; a node that restarts with the
// same --node-id before then leaves no ghost members (docs/protocol.md,
// section 7). Real processes on a real Redis.
func TestPresenceForgetsAKilledNode(t *testing.T) {
	bin := buildNode(t)
	rs := redistest.Start(t)
	prefix := fmt.Sprintf("pres%d", time.Now().UnixNano()%1e6)
	const ttl = 2 * time.Second
	common := []string{"--redis", rs.URL(), "--channel-prefix", prefix, "--presence-ttl", ttl.String()}
	a := startProc(t, bin, append(common, "--node-id", "a")...)
	b := startProc(t, bin, append(common, "--node-id", "b")...)
	waitUntil(t, "both nodes ready", 10*time.Second, func() bool { return readyStatus(a.base) == 200 && readyStatus(b.base) == 200 })

	for _, u := range []string{"x1", "x2"} {
		joinRoom(t, dialWelcome(t, a.ws(u)), "lobby")
	}
	watcher := dialWelcome(t, b.ws("watcher"))
	joinRoom(t, watcher, "lobby")
	waitUntil(t, "three members", 5*time.Second, func() bool { return presenceOf(t, watcher, "lobby") == "users 3 connections 3" })

	a.signal(syscall.SIGKILL)
	killed := time.Now()
	_, _ = a.waitExit(5 * time.Second)
	waitUntil(t, "a's members gone", 2*ttl, func() bool { return presenceOf(t, watcher, "lobby") == "users 1 connections 1" })
	t.Logf("a's members left the room's presence %v after SIGKILL (--presence-ttl %v)", time.Since(killed).Round(10*time.Millisecond), ttl)

	// A node killed and started again at once with the same id: its old
	// share is still within the TTL, and must not count.
	a2 := startProc(t, bin, append(common, "--node-id", "a2")...)
	joinRoom(t, dialWelcome(t, a2.ws("y")), "lobby")
	waitUntil(t, "y counted", 5*time.Second, func() bool { return presenceOf(t, watcher, "lobby") == "users 2 connections 2" })
	a2.signal(syscall.SIGKILL)
	_, _ = a2.waitExit(5 * time.Second)
	a3 := startProc(t, bin, append(common, "--node-id", "a2")...)
	waitUntil(t, "a2 again ready", 10*time.Second, func() bool { return readyStatus(a3.base) == 200 })
	waitUntil(t, "no ghost of a2's old life", ttl/2, func() bool { return presenceOf(t, watcher, "lobby") == "users 1 connections 1" })
}

// A node behind Redis Sentinel (--redis-sentinel-master,
// --redis-sentinels, no --redis) finds the primary through the sentinels
// and serves; either flag alone is refused.
func TestNodeBehindSentinel(t *testing.T) {
	bin := buildNode(t)
	s := redistest.StartSentinel(t)
	n := startProc(t, bin, "--redis-sentinel-master", s.Name, "--redis-sentinels", strings.Join(s.Addrs(), ","))
	waitUntil(t, "ready behind Sentinel", 10*time.Second, func() bool { return readyStatus(n.base) == 200 })
	c := dialWelcome(t, n.ws("ada"))
	joinRoom(t, c, "lobby")
	if got := presenceOf(t, c, "lobby"); got != "users 1 connections 1" {
		t.Fatalf("presence behind Sentinel: %s", got)
	}
	if _, err := parseOptions([]string{"--redis-sentinel-master", "m"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("--redis-sentinel-master alone: %v", err)
	}
}
