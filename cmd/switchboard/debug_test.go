package main

import (
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

func postKill(t *testing.T, base, id, mode string) int {
	t.Helper()
	q := url.Values{"id": {id}}
	if mode != "" {
		q.Set("mode", mode)
	}
	resp, err := http.Post(base+"/debug/kill?"+q.Encode(), "", nil)
	if err != nil {
		t.Fatalf("POST /debug/kill: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func actorsOf(t *testing.T, base string) debugActors {
	t.Helper()
	var doc debugActors
	if st := getJSON(t, base+"/debug/actors", &doc); st != http.StatusOK {
		t.Fatalf("GET /debug/actors: %d", st)
	}
	return doc
}

func statsOf(t *testing.T, base string) transport.Stats {
	t.Helper()
	var st transport.Stats
	if code := getJSON(t, base+"/stats", &st); code != http.StatusOK {
		t.Fatalf("GET /stats: %d", code)
	}
	return st
}

func (d debugActors) room(name string) (debugRoom, bool) {
	for _, r := range d.Rooms {
		if r.Name == name {
			return r, true
		}
	}
	return debugRoom{}, false
}

func (d debugActors) sessionOf(user string) string {
	for _, s := range d.Sessions {
		if s.User == user {
			return s.ID
		}
	}
	return ""
}

func TestDebugEndpointsOffByDefault(t *testing.T) {
	n := startInproc(t)
	if n.admin != "" {
		t.Fatalf("the admin listener is open (%s) with no debug feature on", n.admin)
	}
	if st := getJSON(t, n.base+"/debug/actors", nil); st != http.StatusNotFound {
		t.Fatalf("GET /debug/actors without --enable-kill: %d, want 404", st)
	}
	if st := postKill(t, n.base, "hub", "panic"); st != http.StatusNotFound {
		t.Fatalf("POST /debug/kill without --enable-kill: %d, want 404", st)
	}
}

func TestDebugKillBadRequests(t *testing.T) {
	n := startInproc(t, "--enable-kill")
	for _, c := range []struct {
		id, mode string
		want     int
	}{
		{"", "", http.StatusBadRequest},
		{"hub", "explode", http.StatusBadRequest},
		{"hub", "stop", http.StatusConflict},
		{"hub", "", http.StatusConflict}, // stop is the default mode
		{"session-$nope", "stop", http.StatusNotFound},
		{"deadletter", "panic", http.StatusConflict}, // a process, not an actor
	} {
		if got := postKill(t, n.admin, c.id, c.mode); got != c.want {
			t.Errorf("kill id=%q mode=%q: %d, want %d", c.id, c.mode, got, c.want)
		}
	}
	if st := getJSON(t, n.admin+"/debug/kill?id=hub", nil); st != http.StatusMethodNotAllowed {
		t.Errorf("GET /debug/kill: %d, want 405", st)
	}
}

// TestDebugKillSupervision aims at each kind of actor through the endpoint
// and checks what supervision promises for it.
func TestDebugKillSupervision(t *testing.T) {
	before := runtime.NumGoroutine()
	n := startInproc(t, "--enable-kill")
	// The baseline is the empty node after one connection came and went
	// through a room: the first session and the first room bring the
	// node's session and room supervisors for good.
	warm := dialWelcome(t, n.ws("warm"))
	if err := warm.SendJSON(map[string]any{"type": "join_room", "room": "warm", "id": "w"}); err != nil {
		t.Fatal(err)
	}
	if _, err := warm.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "ack" }); err != nil {
		t.Fatal(err)
	}
	_ = warm.Close()
	waitUntil(t, "the warm-up session and room gone", 5*time.Second, func() bool {
		d := actorsOf(t, n.admin)
		return d.Counts["session"] == 0 && d.Counts["room"] == 0
	})
	empty := actorsOf(t, n.admin).Counts
	alice := dialWelcome(t, n.ws("alice"))
	bob := dialWelcome(t, n.ws("bob"))
	carol := dialWelcome(t, n.ws("carol"))
	for _, c := range []*wsclient.Client{alice, bob, carol} {
		joinRoom(t, c, "lobby")
	}

	doc := actorsOf(t, n.admin)
	if doc.Counts["session"] != 3 || doc.Counts["room"] != 1 || doc.Counts["hub"] != 1 || doc.Hub == "" {
		t.Fatalf("counts: %+v hub %q", doc.Counts, doc.Hub)
	}
	// The registry and the hub's directory agree.
	for _, s := range doc.Sessions {
		if !slices.Contains(doc.Actors["session"], s.ID) {
			t.Fatalf("directory session %s is not a live actor: %v", s.ID, doc.Actors)
		}
	}
	lobby, ok := doc.room("lobby")
	if !ok || len(lobby.Members) != 3 {
		t.Fatalf("lobby: %+v", doc.Rooms)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if !slices.Contains(lobby.Members, doc.sessionOf(u)) {
			t.Fatalf("lobby members %v lack %s's session", lobby.Members, u)
		}
	}

	// A room that panics is resumed: same actor, same members, still routes.
	if st := postKill(t, n.admin, lobby.ID, "panic"); st != http.StatusOK {
		t.Fatalf("panic room: %d", st)
	}
	waitUntil(t, "room panic counted", 5*time.Second, func() bool { return statsOf(t, n.base).RoomPanics == 1 })
	if r, _ := actorsOf(t, n.admin).room("lobby"); r.ID != lobby.ID || len(r.Members) != 3 {
		t.Fatalf("after a room panic: %+v, want %s with 3 members", r, lobby.ID)
	}
	roomRoundTrip(t, alice, "after room panic", bob, carol)

	// A stopped room is re-created by its members, silently.
	if st := postKill(t, n.admin, lobby.ID, "stop"); st != http.StatusOK {
		t.Fatalf("stop room: %d", st)
	}
	waitUntil(t, "lobby re-created with its 3 members", 5*time.Second, func() bool {
		r, ok := actorsOf(t, n.admin).room("lobby")
		return ok && r.ID != lobby.ID && len(r.Members) == 3
	})
	roomRoundTrip(t, bob, "after room stop", alice, carol)
	for _, c := range []*wsclient.Client{alice, bob, carol} {
		for _, e := range c.Drain() {
			if e.Event == "user_joined" || e.Event == "user_left" {
				t.Fatalf("room re-creation leaked presence: %s", e.Raw)
			}
		}
	}

	// The hub panics and is resumed with its directory.
	if st := postKill(t, n.admin, doc.Hub, "panic"); st != http.StatusOK {
		t.Fatalf("panic hub: %d", st)
	}
	waitUntil(t, "hub panic counted", 5*time.Second, func() bool { return statsOf(t, n.base).HubPanics == 1 })
	if d := actorsOf(t, n.admin); d.Counts["session"] != 3 {
		t.Fatalf("directory after a hub panic: %+v", d.Counts)
	}

	// A session stopped from outside closes its socket (1011) and leaves
	// every room; a session that panics does the same and is counted.
	if st := postKill(t, n.admin, doc.sessionOf("carol"), "stop"); st != http.StatusOK {
		t.Fatalf("stop session: %d", st)
	}
	if code, err := carol.WaitClosed(5 * time.Second); err != nil || code != 1011 {
		t.Fatalf("carol after a session stop: code %d, %v", code, err)
	}
	expectEvent(t, alice, "user_left carol", func(e *wsclient.Event) bool { return e.Event == "user_left" && e.UserID == "carol" })
	if st := postKill(t, n.admin, doc.sessionOf("bob"), "panic"); st != http.StatusOK {
		t.Fatalf("panic session: %d", st)
	}
	if code, err := bob.WaitClosed(5 * time.Second); err != nil || code != 1011 {
		t.Fatalf("bob after a session panic: code %d, %v", code, err)
	}
	waitUntil(t, "only alice left, in the directory and the room", 5*time.Second, func() bool {
		d := actorsOf(t, n.admin)
		r, _ := d.room("lobby")
		return d.Counts["session"] == 1 && len(r.Members) == 1 && r.Members[0] == d.sessionOf("alice")
	})
	if st := statsOf(t, n.base); st.SessionPanics != 1 || st.LocalConnections != 1 {
		t.Fatalf("stats: session_panics %d local_connections %d", st.SessionPanics, st.LocalConnections)
	}

	_ = alice.Close()
	waitUntil(t, "no actor but the hub", 5*time.Second, func() bool {
		d := actorsOf(t, n.admin)
		return d.Counts["session"] == 0 && d.Counts["room"] == 0
	})
	// Every kind of actor is back to its count on the empty node: nothing
	// a session or a room brought along (a supervisor, a timer) outlives it.
	if d := actorsOf(t, n.admin); !maps.Equal(d.Counts, empty) {
		t.Fatalf("live actors by kind: %v, %v when the node was empty", d.Counts, empty)
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "goroutines back to baseline", 10*time.Second, func() bool { return runtime.NumGoroutine() <= before })
}

// roomRoundTrip sends a room message from c and checks that c and others
// receive it.
func roomRoundTrip(t *testing.T, c *wsclient.Client, content string, others ...*wsclient.Client) {
	t.Helper()
	if err := c.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": content}); err != nil {
		t.Fatal(err)
	}
	for _, o := range append([]*wsclient.Client{c}, others...) {
		expectEvent(t, o, content, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == content })
	}
}

func expectEvent(t *testing.T, c *wsclient.Client, what string, match func(*wsclient.Event) bool) {
	t.Helper()
	if _, err := c.WaitFor(5*time.Second, match); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
