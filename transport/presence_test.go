package transport_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

type presenceAnswer struct {
	Event       string                `json:"event"`
	ID          json.RawMessage       `json:"id"`
	Room        string                `json:"room"`
	Users       int                   `json:"users"`
	Connections int                   `json:"connections"`
	Members     []wire.PresenceMember `json:"members"`
	Code        string                `json:"code"`
}

// askPresence sends a presence command and returns its answer.
func askPresence(t *testing.T, c *wsclient.Client, room string) presenceAnswer {
	t.Helper()
	id := fmt.Sprint("p-", time.Now().UnixNano())
	_ = c.SendJSON(map[string]any{"type": "presence", "room": room, "id": id})
	e := expect(t, c, "presence answer", func(e *wsclient.Event) bool {
		return (e.Event == "presence" || e.Event == "error") && string(e.ID) == `"`+id+`"`
	})
	var p presenceAnswer
	if err := json.Unmarshal(e.Raw, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p presenceAnswer) String() string {
	return fmt.Sprintf("users %d connections %d members %v", p.Users, p.Connections, p.Members)
}

// waitPresence asks until the room's presence reads want.
func waitPresence(t *testing.T, c *wsclient.Client, room, want string) {
	t.Helper()
	var got presenceAnswer
	waitFor(t, "presence "+want, 5*time.Second, func() bool {
		got = askPresence(t, c, room)
		return got.String() == want
	})
}

// Who is in a room, across the cluster: exact counts and the member list,
// from any node, for a client that need not be a member; a leave or a
// disconnect is gone at once (docs/protocol.md, section 7).
func TestRoomPresenceAcrossTheCluster(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			a, b, _ := historyNodes(t, kind)
			withAPI(a, testAPIKey)
			a.srv.Handle(transport.PresencePath, a.srv.PresenceAPI(testAPIKey))
			alice := a.dial("alice")
			bob1, bob2 := b.dial("bob"), a.dial("bob")
			for _, c := range []*wsclient.Client{alice, bob1, bob2} {
				joinAt(t, c, "r", nil)
			}
			carol := b.dial("carol") // not a member
			waitPresence(t, carol, "r", "users 2 connections 3 members [{alice 1} {bob 2}]")
			if p := askPresence(t, carol, "r"); p.Event != "presence" || p.Room != "r" {
				t.Fatalf("answer: %+v", p)
			}

			// The same over HTTP, without event and id.
			req, _ := http.NewRequest(http.MethodGet, a.url+"/api/presence?room=r", nil)
			req.Header.Set("Authorization", "Bearer "+testAPIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var hp presenceAnswer
			_ = json.NewDecoder(resp.Body).Decode(&hp)
			resp.Body.Close()
			if resp.StatusCode != 200 || hp.String() != "users 2 connections 3 members [{alice 1} {bob 2}]" || hp.Event != "" || hp.Room != "r" {
				t.Fatalf("GET /api/presence: %d %+v", resp.StatusCode, hp)
			}
			for _, bad := range []struct {
				auth, room string
				status     int
			}{{"", "r", 401}, {"Bearer " + testAPIKey, "bad room", 400}} {
				req, _ := http.NewRequest(http.MethodGet, a.url+"/api/presence?room="+bad.room, nil)
				if bad.auth != "" {
					req.Header.Set("Authorization", bad.auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != bad.status {
					t.Fatalf("GET /api/presence (%q, %q): %d, want %d", bad.auth, bad.room, resp.StatusCode, bad.status)
				}
			}

			// A leave and a disconnect are gone at once.
			_ = bob2.SendJSON(map[string]any{"type": "leave_room", "room": "r", "id": "l"})
			expect(t, bob2, "leave ack", isAck(`"l"`))
			waitPresence(t, carol, "r", "users 2 connections 2 members [{alice 1} {bob 1}]")
			_ = alice.Close()
			waitPresence(t, carol, "r", "users 1 connections 1 members [{bob 1}]")
			if p := askPresence(t, carol, "nobody-here"); p.String() != "users 0 connections 0 members []" {
				t.Fatalf("an empty room: %s", p)
			}
			_ = carol.SendJSON(map[string]any{"type": "presence", "room": "bad room", "id": 1})
			if e := expect(t, carol, "invalid room", isEvent("error")); e.Code != "invalid_room" {
				t.Fatalf("presence of an invalid room: %s", e.Raw)
			}
			stillWorks(t, carol, "after")
		})
	}
}
